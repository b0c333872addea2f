// Command resnetctl builds, trains, exports, imports and runs ResNets.
//
// Each subcommand lives in its own file as NewCmdX(streams, runF), an
// XOptions struct and a private xRun(opts), so tests call them with captured
// output. Errors go to stderr; exit codes are set here and only here.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // bad flags or arguments
	exitInt   = 130
)

func main() {
	os.Exit(run(os.Args[1:], defaultStreams()))
}

func run(args []string, s *Streams) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root := NewCmdRoot(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		fmt.Fprintln(s.ErrOut, "resnetctl: interrupted")
		return exitInt
	}
	fmt.Fprintf(s.ErrOut, "resnetctl: %v\n", err)
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(s.ErrOut, "Run '%s --help' for usage.\n", ue.cmd)
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInt
	}
	return exitError
}
