package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kiln/buildhook"
)

// graphRule is what `builds graph` reads of a rule from the API.
type graphRule struct {
	Name       string   `json:"name"`
	Tags       []string `json:"tags"`
	Bases      []string `json:"bases"`
	Dependents []string `json:"dependents"`
}

// newBuildsGraphCmd is `kiln builds graph`: every rule with what it is
// built on, what is built on it, and how its last build went.
func newBuildsGraphCmd(client func() *http.Client, api func(string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "graph",
		Short: "Show the rules with their bases, dependents and last build",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rules []graphRule
			if err := getJSON(client(), api("/rules"), &rules); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RULE\tBUILT ON\tPRODUCES\tBUILT ON IT\tLAST BUILD")
			for _, r := range rules {
				last, err := lastBuild(client(), api, r.Name)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, list(r.Bases), list(r.Tags), list(r.Dependents), last)
			}
			return tw.Flush()
		},
	}
}

// lastBuild describes a rule's newest build: "succeeded 3m ago (ID)".
func lastBuild(client *http.Client, api func(string) string, rule string) (string, error) {
	var recs []buildhook.Record
	if err := getJSON(client, api("/builds?"+url.Values{"rule": {rule}, "limit": {"1"}}.Encode()), &recs); err != nil {
		return "", err
	}
	if len(recs) == 0 {
		return "never", nil
	}
	r := recs[0]
	return fmt.Sprintf("%s %s ago (%s)", r.Status, time.Since(r.Queued).Round(time.Second), r.ID), nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}
