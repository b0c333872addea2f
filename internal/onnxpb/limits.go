package onnxpb

// MaxModelBytes is the largest ONNX file the loaders read: 2 GiB − 1,
// protobuf's limit on a serialized message. ONNX's own tools refuse to
// write a larger ModelProto (such models keep their weights as external
// data), so a larger file is refused before it is read into memory.
const MaxModelBytes = 1<<31 - 1
