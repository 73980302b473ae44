package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"kiln/buildhook"
)

// The CLI checks the names a user types against what exists, so a typo is
// an error that lists the valid names instead of an empty answer.

var buildStatuses = []string{buildhook.StatusQueued, buildhook.StatusRunning, buildhook.StatusSucceeded, buildhook.StatusFailed, buildhook.StatusUnchanged}

// checkStatus refuses a status no build can have.
func checkStatus(status string) error {
	if status == "" || slices.Contains(buildStatuses, status) {
		return nil
	}
	return fmt.Errorf("unknown status %q (want %s)", status, oneOf(buildStatuses))
}

// ruleNames lists the rules of the kiln at api.
func ruleNames(client *http.Client, api func(string) string) ([]string, error) {
	var rules []struct{ Name string }
	if err := getJSON(client, api("/rules"), &rules); err != nil {
		return nil, err
	}
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	return names, nil
}

// checkRule refuses a rule the server does not have.
func checkRule(client *http.Client, api func(string) string, rule string) error {
	if rule == "" {
		return nil
	}
	names, err := ruleNames(client, api)
	if err != nil {
		return err
	}
	if slices.Contains(names, rule) {
		return nil
	}
	return unknownRule(rule, names)
}

func unknownRule(rule string, names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("no rule %q: this kiln has no build rules", rule)
	}
	return fmt.Errorf("no rule %q (rules: %s)", rule, strings.Join(names, ", "))
}

// buildID resolves what `builds logs` was given: a build id, or a rule's
// name for that rule's latest build.
func buildID(client *http.Client, api func(string) string, arg string) (string, error) {
	resp, err := client.Get(api("/builds/" + url.PathEscape(arg)))
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return arg, nil
	}
	if resp.StatusCode != http.StatusNotFound {
		return "", apiFailure(resp)
	}
	names, err := ruleNames(client, api)
	if err != nil {
		return "", err
	}
	if !slices.Contains(names, arg) {
		return "", fmt.Errorf("no build or rule %q (rules: %s)", arg, strings.Join(names, ", "))
	}
	var recs []buildhook.Record
	if err := getJSON(client, api("/builds?"+url.Values{"rule": {arg}, "limit": {"1"}}.Encode()), &recs); err != nil {
		return "", err
	}
	if len(recs) == 0 {
		return "", fmt.Errorf("rule %q has no builds yet", arg)
	}
	return recs[0].ID, nil
}

// oneOf is "a, b, c or d".
func oneOf(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
