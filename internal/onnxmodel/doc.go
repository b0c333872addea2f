// Package onnxmodel is the one ONNX layer that the inference runtime
// (infer) and the importer (import) share: the ONNX versions resnetctl
// reads, decoding a model's bytes and the checks at the model and graph
// level, TensorProto decoding (typed fields, raw_data and external data
// confined to the model's folder) with its element-count guards, typed
// attribute access, the shape arithmetic both need, and the sentinel
// errors.
//
// Errors wrap ErrInvalidModel (the bytes are not a well-formed model) or
// ErrUnsupported (a well-formed model uses something not read). infer and
// import expose ErrInvalidModel as the same value; each keeps its own
// "unsupported" sentinel (infer's is this one).
package onnxmodel
