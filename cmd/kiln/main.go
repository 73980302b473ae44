// Command kiln runs the kiln container registry.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	// SIGINT/SIGTERM cancel the context: serve drains and returns nil.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore default handling so a second
		// one kills a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kiln",
		Short: "kiln is a container registry (OCI Distribution v1.1, Docker Registry v2)",
		// Runtime errors are not usage errors: print them once, without help.
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newVersionCmd(), newBuildsCmd(), newFsckCmd(), newBenchCmd(), newGCCmd(), newRetentionCmd(), newCacheCmd())
	root.AddCommand(newHealthcheckCmd(), newClusterCmd())
	root.AddCommand(newReposCmd()...)
	return root
}
