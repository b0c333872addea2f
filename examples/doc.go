// Package examples holds the example programs (tutorial, classify), which
// use only resnetctl's public packages. Its tests build them in a separate
// module that requires this one, as another project would, and check that
// the inference runtime links no more than it needs.
package examples
