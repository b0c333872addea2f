package models

import (
	"embed"
	"fmt"
	"sort"
	"strings"
)

// The label sets, one class name a line in label order:
//   - cifar10.txt: the official batches.meta.txt order;
//   - cifar100.txt and cifar100-coarse.txt: the official fine and coarse
//     label orders (alphabetical, as in the release's meta file);
//   - imagenet.txt: torchvision's ImageNet-1k category names in class-index
//     order (torchvision/models/_meta.py, _IMAGENET_CATEGORIES).
//
//go:embed labels/*.txt
var labelFiles embed.FS

// LabelSets lists the names Labels accepts.
func LabelSets() []string {
	entries, err := labelFiles.ReadDir("labels")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".txt"))
	}
	sort.Strings(names)
	return names
}

// Labels returns a fresh copy of a named label set: "cifar10", "cifar100",
// "cifar100-coarse" or "imagenet".
func Labels(name string) ([]string, error) {
	b, err := labelFiles.ReadFile("labels/" + name + ".txt")
	if err != nil || strings.ContainsAny(name, "/\\.") {
		return nil, fmt.Errorf("unknown label set %q (want one of %s)", name, strings.Join(LabelSets(), ", "))
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n"), nil
}
