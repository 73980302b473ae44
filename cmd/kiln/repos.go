package main

import (
	"fmt"
	"net/url"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
)

// newReposCmd is `kiln repos ls` and `kiln tags ls REPO`: what a running
// kiln holds, through the registry API (pages followed by
// go-containerregistry).
func newReposCmd() []*cobra.Command {
	var af apiFlags
	// registryOptions resolves the server and how to reach it.
	registryOptions := func() (string, []name.Option, []remote.Option, error) {
		server, client, err := af.connect()
		if err != nil {
			return "", nil, nil, err
		}
		u, err := url.Parse(server)
		if err != nil || u.Host == "" {
			return "", nil, nil, fmt.Errorf("server %q is not a URL", server)
		}
		var nopts []name.Option
		if u.Scheme == "http" {
			nopts = append(nopts, name.Insecure)
		}
		return u.Host, nopts, []remote.Option{remote.WithTransport(client.Transport)}, nil
	}
	flags := func(c *cobra.Command) {
		af.register(c.Flags())
	}

	repos := &cobra.Command{Use: "repos", Short: "The repositories of a running kiln"}
	reposLs := &cobra.Command{
		Use:   "ls",
		Short: "List repositories",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, nopts, ropts, err := registryOptions()
			if err != nil {
				return err
			}
			reg, err := name.NewRegistry(host, nopts...)
			if err != nil {
				return err
			}
			names, err := remote.Catalog(cmd.Context(), reg, ropts...)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	flags(reposLs)
	repos.AddCommand(reposLs)

	tags := &cobra.Command{Use: "tags", Short: "The tags of a repository of a running kiln"}
	tagsLs := &cobra.Command{
		Use:   "ls REPO",
		Short: "List a repository's tags",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host, nopts, ropts, err := registryOptions()
			if err != nil {
				return err
			}
			repo, err := name.NewRepository(host+"/"+args[0], nopts...)
			if err != nil {
				return err
			}
			list, err := remote.List(repo, append(ropts, remote.WithContext(cmd.Context()))...)
			if err != nil {
				return err
			}
			for _, t := range list {
				fmt.Fprintln(cmd.OutOrStdout(), t)
			}
			return nil
		},
	}
	flags(tagsLs)
	tags.AddCommand(tagsLs)
	return []*cobra.Command{repos, tags}
}
