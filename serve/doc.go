// Package serve is resnetctl's model server: it serves ONNX models loaded
// with infer over HTTP, speaking the REST API of the KServe Open Inference
// Protocol (v2), the protocol of Triton, KServe and Seldon MLServer, so a
// client written for those works against it and the other way round.
//
// # Endpoints
//
//	GET  /v2/health/live                                    {"live": true}
//	GET  /v2/health/ready                                   {"ready": true}, 503 while draining
//	GET  /v2                                                server metadata
//	GET  /v2/models/{name}[/versions/{v}]                   model metadata
//	GET  /v2/models/{name}[/versions/{v}]/ready             {"name": …, "ready": true}
//	POST /v2/models/{name}[/versions/{v}]/infer             inference on JSON tensors
//	POST /v1/models/{name}:classify                         an image body → top-k class names
//	GET  /metrics                                           Prometheus text format
//
// Tensors travel as the protocol's JSON: "data" flat or nested row-major,
// FP32, FP64, INT32, INT64 or BOOL as the model's input is typed (the
// datatype must match, as Triton requires). Errors are {"error": "…"} with
// 400 for a bad request, 404 for an unknown model, version or path, 405 for
// a wrong method, 408 for a body that arrived too slowly, 413 for a body
// over the limit, 429 when the in-flight limit is reached, 503 while not
// ready, 504 when a request outlives its timeout, and 500 for a failure of
// the model itself.
//
// # Batching
//
// Each model has a batcher. When every input and output has a dynamic
// first dimension, concurrent requests with the same per-sample shapes are
// concatenated along it, up to Config.MaxBatch rows or until the oldest has
// waited Config.MaxDelay, run as one batch and answered separately. When
// every input has the same fixed first dimension B (a fixed-batch model),
// requests are cut and zero-padded into runs of exactly B rows. Other
// models run each request as sent.
//
// # Limits
//
// A request body is at most Config.MaxBody bytes and a tensor at most
// Config.MaxElements elements; at most Config.MaxInflight requests wait for
// a model at once, beyond which requests are refused with 429 at once
// rather than queued, so memory stays bounded by about MaxInflight ×
// (2 × MaxBody + the tensors). Serve stops on its context's end: it stops
// accepting, answers every request it accepted, then returns.
package serve
