package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// version is set at link time with -ldflags "-X main.version=…".
var version = "dev"

// Streams are the command's standard streams, injected so tests capture them.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

func defaultStreams() *Streams {
	return &Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// usageError marks a mistake in flags or arguments: main prints a hint to
// --help and exits with code 2.
type usageError struct {
	cmd string
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf(format, args...)}
}

// NewCmdRoot assembles the resnetctl command tree.
func NewCmdRoot(s *Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "resnetctl <command> [flags]",
		Short: "Build, train, export and run residual networks, ONNX-native",
		Long: `resnetctl builds ResNets from a catalog of architectures (CIFAR ResNet-20
to ResNet-1202, ResNet-164, ImageNet ResNet-18 to ResNet-152, ResNeXt, wide and
pre-activation variants), trains them natively in Go, and moves them in and out
of ONNX.`,
		Example: `  resnetctl models
  resnetctl summary --model resnet56
  resnetctl summary --model resnet50 --classes 10 --input 3x64x64 --json`,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{cmd: c.CommandPath(), err: err}
	})
	root.AddCommand(NewCmdModels(s, nil), NewCmdSummary(s, nil), NewCmdExport(s, nil), NewCmdPredict(s, nil), NewCmdEvaluate(s, nil), NewCmdBench(s, nil), NewCmdInspect(s, nil), NewCmdData(s), NewCmdImport(s, nil), NewCmdTrain(s, nil), NewCmdServe(s, nil), NewCmdQuantize(s, nil))
	// Unknown subcommands and stray arguments are usage errors too.
	root.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErrorf(c, "unknown command %q", args[0])
		}
		return nil
	}
	root.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
	return root
}
