package main

// The CLI offers --engine gorgonnx (onnx-go with its gorgonia backend, a
// cross-check of the native runtime): linking the engine registers it with
// package infer.
import _ "github.com/resnetctl/resnetctl/infer/gorgonnx"
