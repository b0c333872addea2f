#!/usr/bin/env node
// Runs ONNX models with ONNX Runtime (onnxruntime-node, CPU execution provider)
// for the Go package internal/interop. Install once with
//   cd tools/ort && ONNXRUNTIME_NODE_INSTALL=skip npm ci
//
// Protocol: one JSON request on stdin, one JSON response on stdout.
//
// Request:
//   {"jobs": [{"model": "/abs/m.onnx",
//              "inputs": {"input": {"dims": [3,3,32,32], "file": "/abs/in.f32"}},
//              "out_dir": "/abs/out/0"}],
//    "session_options": {"graph_optimization_level": "all", "intra_op_num_threads": 0}}
// Tensor files are raw little-endian float32, row-major. session_options is
// optional; its keys are the two shown (0 threads = ORT's default).
//
// Response:
//   {"ort_version": "1.30.0", "node_version": "v20...",
//    "results": [{"model": ..., "input_names": [...], "output_names": [...],
//                 "input_metadata": [{"name", "is_tensor", "type", "shape"}], "output_metadata": [...],
//                 "outputs": {"name": {"dims": [...], "type": "float32", "file": "/abs/out/0/0.bin"}},
//                 "session_ms": 12.3, "run_ms": 0.4, "error": "..."}]}
// results[i] answers jobs[i]. A failing job sets only its own "error" (plus
// whatever was learned before the failure) and the others still run. Shapes in
// *_metadata hold numbers for fixed dimensions and strings for symbolic ones.
// Outputs are written as raw little-endian bytes of their own element type
// ("float32" -> 4 bytes each); bool outputs as one byte each; string outputs
// are not supported (job error).
//
// Efficiency: one process serves the whole request; each distinct model gets
// one InferenceSession, created when first needed and released after the last
// job that uses it, so a test matrix over many models keeps few sessions alive.
// ONNX Runtime's own log lines go to stderr, never stdout.
//
// Exit status: 0 when a response was written (even if jobs failed), 2 when the
// request itself was unusable (a response {"error": "..."} is still written).
// ORT-node exposes per-input/output metadata (type, shape, symbolic dims) but
// not model-level metadata (producer, opsets, metadata_props), so only the
// former is reported.

'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

function fail(msg) {
  process.stdout.write(JSON.stringify({ error: msg }) + '\n');
  process.exitCode = 2;
}

function errorText(e) {
  if (e instanceof Error) return e.message || String(e);
  return String(e);
}

function ms(start) {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function readStdin() {
  // fd 0 read synchronously: works for pipes and files alike.
  const chunks = [];
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      if (e.code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function checkDims(dims, what) {
  if (!Array.isArray(dims) || !dims.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`${what}: dims must be an array of non-negative integers, got ${JSON.stringify(dims)}`);
  }
  return dims.reduce((a, b) => a * b, 1);
}

function loadInput(ort, name, spec) {
  if (spec === null || typeof spec !== 'object') throw new Error(`input ${JSON.stringify(name)}: not an object`);
  const count = checkDims(spec.dims, `input ${JSON.stringify(name)}`);
  if (typeof spec.file !== 'string') throw new Error(`input ${JSON.stringify(name)}: "file" must be a path`);
  const bytes = fs.readFileSync(spec.file);
  if (bytes.length !== count * 4) {
    throw new Error(
      `input ${JSON.stringify(name)}: ${spec.file} has ${bytes.length} bytes, dims ${JSON.stringify(spec.dims)} need ${count * 4}`,
    );
  }
  // Copy into a fresh, 4-byte-aligned buffer (readFileSync gives no alignment promise).
  const data = new Float32Array(count);
  new Uint8Array(data.buffer).set(bytes);
  return new ort.Tensor('float32', data, spec.dims);
}

function outputBytes(tensor) {
  const d = tensor.data;
  if (tensor.type === 'string') throw new Error('string outputs are not supported');
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  throw new Error(`output of type ${tensor.type} has no CPU data`);
}

function valueMetadata(list) {
  return (list || []).map((m) =>
    m.isTensor ? { name: m.name, is_tensor: true, type: m.type, shape: Array.from(m.shape) } : { name: m.name, is_tensor: false },
  );
}

function sessionOptions(req) {
  const opts = { executionProviders: ['cpu'] };
  const so = req.session_options || {};
  for (const key of Object.keys(so)) {
    if (key === 'graph_optimization_level') opts.graphOptimizationLevel = so[key];
    else if (key === 'intra_op_num_threads') opts.intraOpNumThreads = so[key];
    else throw new Error(`session_options: unknown key ${JSON.stringify(key)}`);
  }
  return opts;
}

async function runJob(ort, job, sessions, res) {
  if (job === null || typeof job !== 'object') throw new Error('job is not an object');
  if (typeof job.model !== 'string' || job.model === '') throw new Error('job has no "model" path');
  if (typeof job.out_dir !== 'string' || job.out_dir === '') throw new Error('job has no "out_dir"');
  res.model = job.model;

  const t0 = process.hrtime.bigint();
  const session = await sessions.get(job.model);
  if (!session.reported) res.session_ms = session.ms;
  session.reported = true;
  res.input_names = Array.from(session.s.inputNames);
  res.output_names = Array.from(session.s.outputNames);
  res.input_metadata = valueMetadata(session.s.inputMetadata);
  res.output_metadata = valueMetadata(session.s.outputMetadata);

  const feeds = {};
  for (const [name, spec] of Object.entries(job.inputs || {})) feeds[name] = loadInput(ort, name, spec);

  const t1 = process.hrtime.bigint();
  const out = await session.s.run(feeds);
  res.run_ms = ms(t1);

  fs.mkdirSync(job.out_dir, { recursive: true });
  const outputs = {};
  res.output_names.forEach((name, i) => {
    const tensor = out[name];
    if (tensor === undefined) throw new Error(`output ${JSON.stringify(name)} missing from the run's results`);
    // File names by position: ONNX value names may contain '/', ':' and the like.
    const file = path.join(job.out_dir, `${i}.bin`);
    fs.writeFileSync(file, outputBytes(tensor));
    outputs[name] = { dims: Array.from(tensor.dims), type: tensor.type, file };
  });
  res.outputs = outputs;
  res.total_ms = ms(t0);
}

async function main() {
  if (os.endianness() !== 'LE') return fail('tools/ort/run.js needs a little-endian machine');
  let req;
  try {
    req = JSON.parse(readStdin());
  } catch (e) {
    return fail(`cannot parse the JSON request on stdin: ${errorText(e)}`);
  }
  if (req === null || typeof req !== 'object' || !Array.isArray(req.jobs)) {
    return fail('request must be an object with a "jobs" array');
  }

  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    return fail(
      `cannot load onnxruntime-node (run: cd tools/ort && ONNXRUNTIME_NODE_INSTALL=skip npm ci): ${errorText(e)}`,
    );
  }
  let opts;
  try {
    opts = sessionOptions(req);
  } catch (e) {
    return fail(errorText(e));
  }

  // Index of the last job using each model, to release sessions early.
  const lastUse = new Map();
  req.jobs.forEach((job, i) => {
    if (job && typeof job.model === 'string') lastUse.set(job.model, i);
  });
  const cache = new Map(); // model path -> Promise<{s, ms}>; a rejected promise caches the load error
  const sessions = {
    get(model) {
      if (!cache.has(model)) {
        const t = process.hrtime.bigint();
        const p = ort.InferenceSession.create(model, opts).then((s) => ({ s, ms: ms(t), reported: false }));
        p.catch(() => {}); // the error is reported per job that awaits it
        cache.set(model, p);
      }
      return cache.get(model);
    },
    async done(model, i) {
      if (lastUse.get(model) !== i || !cache.has(model)) return;
      const p = cache.get(model);
      cache.delete(model);
      try {
        await (await p).s.release();
      } catch (_) {
        // load failed or release failed: nothing to free
      }
    },
  };

  const results = [];
  for (let i = 0; i < req.jobs.length; i++) {
    const job = req.jobs[i];
    const res = {};
    try {
      await runJob(ort, job, sessions, res);
    } catch (e) {
      res.error = errorText(e);
    }
    if (job && typeof job.model === 'string') await sessions.done(job.model, i);
    results.push(res);
  }
  process.stdout.write(
    JSON.stringify({ ort_version: ort.env.versions.node, node_version: process.version, results }) + '\n',
  );
}

main().catch((e) => fail(`internal error: ${errorText(e && e.stack ? e.stack : e)}`));
