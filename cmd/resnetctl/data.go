package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/internal/printable"
	"github.com/spf13/cobra"
)

// NewCmdData makes `resnetctl data` and its subcommands.
func NewCmdData(s *Streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "data <command>",
		Short: "Download and inspect data sets",
		Long: `Download the official CIFAR archives into a cache folder, and inspect data
sets: CIFAR binary files, folders or archives, and image folders.`,
		Example: `  resnetctl data fetch cifar10
  resnetctl data info ../shared/data/cifar10-jpeg.tar.gz --split test`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf(c, "unknown data command %q (want fetch or info)", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error { return c.Help() },
	}
	c.AddCommand(NewCmdDataFetch(s, nil), NewCmdDataInfo(s, nil))
	return c
}

// DataFetchOptions are the inputs of `resnetctl data fetch`.
type DataFetchOptions struct {
	Streams *Streams
	Name    string
	Cache   string
	URL     string
}

// NewCmdDataFetch makes `resnetctl data fetch`.
func NewCmdDataFetch(s *Streams, runF func(*DataFetchOptions) error) *cobra.Command {
	opts := &DataFetchOptions{Streams: s}
	c := &cobra.Command{
		Use:   "fetch cifar10|cifar100",
		Short: "Download an official CIFAR archive into the cache",
		Long: `Download the official CIFAR-10 or CIFAR-100 binary release (about 170 MB) into
the cache folder, checking its size, SHA-256 and MD5. An archive already there is
checked and reused; an interrupted download resumes. The archive is read in place
by train and evaluate (--data cifar10 or the printed path).`,
		Example: `  resnetctl data fetch cifar10
  resnetctl data fetch cifar100 --cache /data/cache`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf(c, "fetch takes one data set name: cifar10 or cifar100")
			}
			if _, err := cifar.LookupRelease(args[0]); err != nil {
				return usageErrorf(c, "%v", err)
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.Name = args[0]
			if opts.Cache == "" {
				dir, err := cifar.DefaultCacheDir()
				if err != nil {
					return err
				}
				opts.Cache = dir
			}
			if runF != nil {
				return runF(opts)
			}
			return dataFetchRun(c, opts)
		},
	}
	c.Flags().StringVar(&opts.Cache, "cache", "", "cache folder (default: resnetctl/datasets in the user cache folder)")
	c.Flags().StringVar(&opts.URL, "url", "", "download from this mirror instead of the official URL (the bytes must match)")
	return c
}

func dataFetchRun(c *cobra.Command, opts *DataFetchOptions) error {
	bar := isTerminal(opts.Streams.ErrOut)
	start := time.Now()
	last := time.Time{}
	progress := func(done, total int64) {
		if !bar || time.Since(last) < 200*time.Millisecond && done != total {
			return
		}
		last = time.Now()
		rate := float64(done) / time.Since(start).Seconds() / 1e6
		if total > 0 {
			fmt.Fprintf(opts.Streams.ErrOut, "\r%s: %5.1f%% of %.1f MB, %.1f MB/s   ", opts.Name, 100*float64(done)/float64(total), float64(total)/1e6, rate)
		} else {
			fmt.Fprintf(opts.Streams.ErrOut, "\r%s: %.1f MB, %.1f MB/s   ", opts.Name, float64(done)/1e6, rate)
		}
	}
	path, err := cifar.FetchWith(c.Context(), opts.Name, opts.Cache, cifar.FetchOptions{URL: opts.URL, Progress: progress})
	if bar {
		fmt.Fprintln(opts.Streams.ErrOut)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(opts.Streams.Out, path)
	return nil
}

// DataInfoOptions are the inputs of `resnetctl data info`.
type DataInfoOptions struct {
	Streams *Streams
	Path    string
	Split   string
	JSON    bool
}

// NewCmdDataInfo makes `resnetctl data info`.
func NewCmdDataInfo(s *Streams, runF func(*DataInfoOptions) error) *cobra.Command {
	opts := &DataInfoOptions{Streams: s}
	c := &cobra.Command{
		Use:   "info PATH",
		Short: "Describe a data set: format, split, classes, image counts",
		Long: `Open a data set the way train and evaluate do, validate it, and print its
format, split, classes and the number of images of each class.`,
		Example: `  resnetctl data info ../shared/data/cifar10-jpeg.tar.gz --split train
  resnetctl data info cifar-10-batches-bin --split test --json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf(c, "info takes one path")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.Path = args[0]
			if runF != nil {
				return runF(opts)
			}
			return dataInfoRun(c, opts)
		},
	}
	c.Flags().StringVar(&opts.Split, "split", "test", `split to read ("" for class folders directly under PATH)`)
	c.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	return c
}

func dataInfoRun(c *cobra.Command, opts *DataInfoOptions) error {
	src, err := cifar.Open(c.Context(), opts.Path, cifar.Options{Split: opts.Split})
	if err != nil {
		return err
	}
	counts := make([]int, len(src.Classes))
	// Binary sets hold their labels in memory; image folders are walked
	// without decoding for the count.
	if err := src.Walk(c.Context(), func(s cifar.Sample) error {
		counts[s.Label]++
		return nil
	}); err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(printable.JSON(opts.Streams.Out)) // see predict
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"path": src.Path, "format": src.Format, "split": src.Split, "images": src.Len, "classes": src.Classes, "counts": counts})
	}
	w := opts.Streams.Out
	// Class names are folder names from the data set: escaped (quoted)
	// when they hold control characters or are not UTF-8.
	fmt.Fprintf(w, "%s: %s, split %q, %d images, %d classes\n", printable.Name(src.Path), src.Format, src.Split, src.Len, len(src.Classes))
	for i, n := range src.Classes {
		fmt.Fprintf(w, "  %3d  %-20s %6d\n", i, printable.Name(n), counts[i])
	}
	return nil
}
