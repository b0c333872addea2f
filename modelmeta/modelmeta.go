// Package modelmeta names what a model exported by resnetctl carries
// besides its graph: the metadata_props keys (class names, label set,
// preprocessing, architecture, BatchNorm folding), the input and output
// names, and the JSON form of the preprocessing description.
//
// The export package writes these; the inference runtime (infer), the
// classify package, the server and the importer read them. The package
// depends on the standard library only, so a program reading a model's
// metadata links nothing else.
package modelmeta

import (
	"encoding/json"
	"fmt"
)

// Input, output and dimension names of an exported model.
const (
	// InputName is the graph input: a float32 [N, C, H, W] batch.
	InputName = "input"
	// LogitsName is the output holding the raw scores, [N, classes].
	LogitsName = "logits"
	// ProbabilitiesName is the Softmax of the logits, present when the
	// model was exported with a Softmax.
	ProbabilitiesName = "probabilities"
	// BatchDim is the symbolic name of the dynamic batch dimension.
	BatchDim = "N"
)

// metadata_props keys of an exported model.
const (
	// MetaClasses holds a JSON array of class names, in class-index order.
	MetaClasses = "classes"
	// MetaLabelSet holds the catalog name of the label set (cifar10,
	// imagenet …).
	MetaLabelSet = "label_set"
	// MetaPreprocess holds a JSON Preprocessing.
	MetaPreprocess = "preprocess"
	// MetaArchitecture holds the JSON models.Spec the model was built from.
	MetaArchitecture = "architecture"
	// MetaFoldedBN is "true" when the BatchNorms were folded into the
	// convolutions, else "false".
	MetaFoldedBN = "folded_batchnorm"
)

// Preprocessing is the JSON stored under MetaPreprocess: how to turn 8-bit
// RGB pixels into the input tensor, x = (pixel*scale - mean[c]) / std[c].
type Preprocessing struct {
	Scale     float32   `json:"scale"`
	Mean      []float32 `json:"mean"`
	Std       []float32 `json:"std"`
	Layout    string    `json:"layout"`     // NCHW (resnetctl's exports) or NHWC
	Color     string    `json:"color"`      // RGB (resnetctl's exports) or BGR
	InputSize []int     `json:"input_size"` // C, H, W
	Preset    string    `json:"preset,omitempty"`
}

// ParseClasses decodes the value of MetaClasses.
func ParseClasses(value string) ([]string, error) {
	var classes []string
	if err := json.Unmarshal([]byte(value), &classes); err != nil {
		return nil, fmt.Errorf("metadata %q: %w", MetaClasses, err)
	}
	return classes, nil
}

// ParsePreprocessing decodes the value of MetaPreprocess.
func ParsePreprocessing(value string) (*Preprocessing, error) {
	var p Preprocessing
	if err := json.Unmarshal([]byte(value), &p); err != nil {
		return nil, fmt.Errorf("metadata %q: %w", MetaPreprocess, err)
	}
	return &p, nil
}

// Classes returns the class names in props (a model's metadata_props), or
// nil when there are none.
func Classes(props map[string]string) ([]string, error) {
	s, ok := props[MetaClasses]
	if !ok {
		return nil, nil
	}
	return ParseClasses(s)
}

// PreprocessingOf returns the preprocessing in props (a model's
// metadata_props), or nil when there is none.
func PreprocessingOf(props map[string]string) (*Preprocessing, error) {
	s, ok := props[MetaPreprocess]
	if !ok {
		return nil, nil
	}
	return ParsePreprocessing(s)
}
