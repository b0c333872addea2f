// Package infer is resnetctl's ONNX inference runtime.
//
// Load (or LoadBytes) reads a model, validates all of it up front and
// returns a Session:
//
//	s, err := infer.Load("model.onnx", infer.Options{Threads: 2})
//	out, err := s.Run(ctx, map[string]*infer.Tensor{"input": x})
//
// # What it reads
//
// IR versions 3 to 10 and ai.onnx opsets 7 to 21. Initializers may use
// raw_data or the typed fields, may be listed as graph inputs too (IR 3 and
// model-zoo files; they are then not user inputs), and may live in external
// files inside the model's folder (absolute paths, ".." and symlinks that
// leave the folder are refused). Inputs may have a dynamic batch (or any
// dynamic dimension). Tensors are float32, float64, int64, int32 or bool;
// compute ops take float32, integers serve shape arithmetic and indices.
// uint8, int8 and float16 are edge types (inputs, outputs, initializers,
// Cast): held widened inside a run, float16 computed in float32 wherever
// float32 is (as ONNX Runtime's CPU provider computes fp16 models) and
// rounded to float16 where it leaves the network, uint8 and int8 moved and
// cast (image bytes preprocessed inside the graph) but not computed on.
//
// Validation reports every problem at once, each by node name and op type,
// in a *LoadError matching ErrUnsupported (an op, attribute value or type
// this runtime does not implement) and/or ErrInvalidModel (bad protobuf,
// dangling names, cycles, malformed tensors). SupportedOps lists the ops;
// each is one small constructor in an ops_*.go file, registered in
// opRegistry by the opset versions ONNX defines, and a node uses the newest
// version not above the model's opset. Constructors read and check every
// attribute at load; attributes a version does not define are reported.
//
// # How it runs
//
// A model is planned once per set of input shapes (plans are cached, the
// oldest dropped beyond Options.MaxPlans): every value's shape is inferred,
// everything computable from constants and input shapes alone (Shape →
// Gather → Unsqueeze → Concat → Reshape chains, ConstantOfShape …) is
// folded into constants, Reshape-like ops become views, and the remaining
// steps get buffers in a slab reused by liveness (elementwise ops and
// fused residual convolutions work in place where their input dies). Values
// that planning must know but that come from a graph input (an int64 shape
// fed at run time) make that input's contents part of the plan key.
//
// At load, a BatchNormalization that follows a convolution is folded into
// its weights, and a convolution followed by an Add (whose other operand
// becomes the residual) and/or a Relu runs them in its epilogue
// (internal/kernels). Kernels spread work over a kernels.Pool of
// Options.Threads workers. Session.Run is safe for concurrent use: each
// run takes a context (buffers, views, instantiated kernels) from a
// per-plan free list. RunInto writes into caller-owned tensors and does not
// allocate in steady state (except for the widened copies of edge-type
// inputs and outputs, made on every run).
//
// # Engines
//
// EngineNative (the default) is the runtime above; it is all this package
// links (the standard library, golang.org/x/sys, protobuf decoding and its
// own kernels). Other engines register themselves with RegisterEngine from
// the init function of their package, which a program imports for that
// side effect, as image formats and database/sql drivers do.
// EngineGorgonnx runs the same file with onnx-go and gorgonia, for
// cross-checking (one float32 input, a subset of the ops):
//
//	import _ "github.com/resnetctl/resnetctl/infer/gorgonnx"
//
// Asking for it without that import is an error naming the import.
//
// Metadata describes a model: format versions, producer, metadata_props
// (with helpers for the class names and preprocessing resnetctl's exports
// store, under the keys of package modelmeta), and the declared inputs and
// outputs.
//
// # Around the runtime
//
// Package imgproc decodes and preprocesses images as torchvision does,
// package classify works out a classifier's input and preprocessing from
// its metadata and ranks its scores into named top-k predictions, and
// package export writes models from the catalog (package models).
package infer
