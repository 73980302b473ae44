package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kiln/buildhook"
	"kiln/buildhook/build"
)

// newBuildsCmd is `kiln builds`: the build API of a running kiln.
func newBuildsCmd() *cobra.Command {
	var af apiFlags
	var server string // resolved before each subcommand runs
	cmd := &cobra.Command{
		Use:   "builds",
		Short: "List, inspect and trigger the builds of a running kiln",
	}
	af.register(cmd.PersistentFlags())
	var client *http.Client
	cmd.PersistentPreRunE = func(*cobra.Command, []string) (err error) {
		server, client, err = af.connect()
		return err
	}
	api := func(path string) string { return strings.TrimSuffix(server, "/") + "/kiln/v1" + path }

	var rule, status string
	var limit int
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List builds, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return fmt.Errorf("--limit must be at least 1, got %d", limit)
			}
			if err := checkStatus(status); err != nil {
				return err
			}
			if err := checkRule(client, api, rule); err != nil {
				return err
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if rule != "" {
				q.Set("rule", rule)
			}
			if status != "" {
				q.Set("status", status)
			}
			var recs []buildhook.Record
			if err := getJSON(client, api("/builds?"+q.Encode()), &recs); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRULE\tSTATUS\tBUILDER\tTRIGGER\tQUEUED\tDURATION")
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Rule, r.Status, r.Builder,
					orDash(r.TriggerRef), r.Queued.Local().Format(time.DateTime), duration(r))
			}
			return tw.Flush()
		},
	}
	ls.Flags().StringVar(&rule, "rule", "", "only builds of this rule")
	ls.Flags().StringVar(&status, "status", "", "only builds with this status ("+oneOf(buildStatuses)+")")
	ls.Flags().IntVar(&limit, "limit", 100, "at most this many builds")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one build's record",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rec json.RawMessage
			if err := getJSON(client, api("/builds/"+url.PathEscape(args[0])), &rec); err != nil {
				return err
			}
			_, err := cmd.OutOrStdout().Write(append(rec, '\n'))
			return err
		},
	}

	var follow bool
	logs := &cobra.Command{
		Use:   "logs ID|RULE",
		Short: "Print a build's log (a rule's name: its latest build)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := buildID(client, api, args[0])
			if err != nil {
				return err
			}
			u := api("/builds/" + url.PathEscape(id) + "/log")
			if follow {
				u += "?follow=1"
			}
			resp, err := client.Get(u)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return apiFailure(resp)
			}
			_, err = io.Copy(cmd.OutOrStdout(), resp.Body)
			return err
		},
	}
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the build ends")

	var force bool
	trigger := &cobra.Command{
		Use:   "trigger RULE",
		Short: "Queue a build of a rule now",
		Long: "Queue a build of a rule now. A build whose inputs (bases, Dockerfile, context, arguments, builder)\n" +
			"equal those of the rule's last successful build ends as \"unchanged\" and moves no tag; --force builds anyway.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := api("/rules/" + url.PathEscape(args[0]) + "/trigger")
			if force {
				u += "?force=true"
			}
			resp, err := client.Post(u, "application/json", nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				names, err := ruleNames(client, api)
				if err != nil {
					return err
				}
				return unknownRule(args[0], names)
			}
			if resp.StatusCode != http.StatusAccepted {
				return apiFailure(resp)
			}
			var out struct{ ID string }
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.ID)
			return nil
		},
	}
	candidates := &cobra.Command{
		Use:   "candidates",
		Short: "List images built on another tag's image but without a base annotation (autorebase could adopt them)",
		Long: `List the images whose layers start with all the layers of another tag's
image (their likely base) but that carry no org.opencontainers.image.base.name
annotation. With buildhook.autorebase on, an image pushed with that annotation
and org.opencontainers.image.base.digest is rebased whenever its base moves.
For an index, its linux/amd64 image (else its first) is compared.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cands []buildhook.Candidate
			if err := getJSON(client, api("/candidates"), &cands); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(cands) == 0 {
				fmt.Fprintln(out, "no candidates")
				return nil
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tBASE\tSHARED LAYERS\tBASE DIGEST")
			for _, c := range cands {
				img := c.Image
				if c.Platform != "" {
					img += " (" + c.Platform + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d of %d\t%s\n", img, c.Base, c.SharedLayers, c.Layers, c.BaseDigest)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			host := server
			if u, err := url.Parse(server); err == nil && u.Host != "" {
				host = u.Host
			}
			c := cands[0]
			fmt.Fprintf(out, "\nWith buildhook.autorebase on, adopt one by pushing it with its base annotations, e.g.\n"+
				"  crane mutate --annotation %s=%s/%s --annotation %s=%s %s/%s\n",
				build.AnnotationBaseName, host, c.Base, build.AnnotationBaseDigest, c.BaseDigest, host, c.Image)
			return nil
		},
	}
	graph := newBuildsGraphCmd(func() *http.Client { return client }, api)
	trigger.Flags().BoolVar(&force, "force", false, "build even when nothing the build reads changed")
	cmd.AddCommand(ls, show, logs, trigger, candidates, graph)
	return cmd
}

func getJSON(client *http.Client, u string, v any) error {
	return doJSON(client, http.MethodGet, u, v)
}

// doJSON sends a bodiless request to the kiln API and decodes its JSON
// answer into v; an answer other than 200 is an error saying why.
func doJSON(client *http.Client, method, u string, v any) error {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apiFailure(resp)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func apiFailure(resp *http.Response) error {
	var e struct{ Error string }
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s: log in with --username or $KILN_USERNAME, and $KILN_PASSWORD", resp.Status)
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func duration(r buildhook.Record) string {
	if r.Started == nil {
		return "-"
	}
	end := time.Now()
	if r.Finished != nil {
		end = *r.Finished
	}
	return end.Sub(*r.Started).Round(time.Millisecond).String()
}
