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
	"sync/atomic"
	"syscall"

	"github.com/resnetctl/resnetctl/internal/printable"
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
	// SIGINT (Ctrl-C) and SIGTERM (kill, timeout, docker stop, Kubernetes)
	// both cancel the command's context: a training run saves its
	// unfinished epoch either way. The exit code is 128 + the signal's
	// number, as a shell reports a process the signal killed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var got atomic.Value // the first signal received
	go func() {
		select {
		case sig := <-sigs:
			got.Store(sig)
			cancel()
		case <-ctx.Done():
		}
	}()
	root := NewCmdRoot(s)
	var prof cpuProfile
	prof.register(root)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if perr := prof.stop(); perr != nil && err == nil {
		err = perr
	}
	if err == nil {
		return exitOK
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		sig, _ := got.Load().(os.Signal)
		fmt.Fprintf(s.ErrOut, "resnetctl: %s\n", signalWord(sig))
		return signalExit(sig)
	}
	// Errors may quote names from anywhere below (file and archive member
	// names, class names): control characters and bytes that are not
	// UTF-8 are escaped, so that no terminal escape sequence is printed raw.
	fmt.Fprintf(s.ErrOut, "resnetctl: %s\n", printable.Text(err.Error()))
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

// signalWord says how the run was stopped.
func signalWord(sig os.Signal) string {
	if sig == syscall.SIGTERM {
		return "terminated"
	}
	return "interrupted"
}

// signalExit is the exit code of a command a signal stopped: 130 for
// SIGINT, 143 for SIGTERM.
func signalExit(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok && s > 0 && s < 64 {
		return 128 + int(s)
	}
	return exitInt
}
