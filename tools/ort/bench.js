#!/usr/bin/env node
// Times one ONNX model in ONNX Runtime (onnxruntime-node, CPU), the way
// `resnetctl bench` times ours, for tools/bench.sh:
//   node tools/ort/bench.js MODEL.onnx BATCH THREADS ITERS WARMUP [C H W]
// Random normal input at [BATCH, C, H, W] (C H W default 3 224 224); prints one
// JSON object with median_ms, min_ms, max_ms, mean_ms, images_per_s and
// peak_rss_mib, the peak resident memory of the whole node process (VmHWM,
// as `resnetctl bench` reports its own).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

// peakRSSMiB is VmHWM of /proc/self/status in MiB, else getrusage's maxRSS
// (KiB on Linux).
function peakRSSMiB() {
  try {
    const m = /^VmHWM:\s*(\d+)\s*kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return +m[1] / 1024;
  } catch (e) { /* not Linux */ }
  return process.resourceUsage().maxRSS / 1024;
}

async function main() {
  const [model, batchS, threadsS, itersS, warmupS, cS, hS, wS] = process.argv.slice(2);
  const batch = +batchS, threads = +threadsS, iters = +itersS, warmup = +warmupS;
  const c = +(cS || 3), h = +(hS || 224), w = +(wS || 224);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all',
    intraOpNumThreads: threads, interOpNumThreads: 1,
  });
  const n = batch * c * h * w;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i += 2) { // Box-Muller
    const u = Math.random() || 1e-12, v = Math.random();
    const r = Math.sqrt(-2 * Math.log(u));
    data[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) data[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, [batch, c, h, w]) };
  for (let i = 0; i < warmup; i++) await session.run(feeds);
  const times = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const m = sorted.length;
  const median = m % 2 ? sorted[(m - 1) / 2] : (sorted[m / 2 - 1] + sorted[m / 2]) / 2;
  const mean = times.reduce((a, b) => a + b, 0) / m;
  process.stdout.write(JSON.stringify({
    engine: 'onnxruntime-node', batch, threads, iters, median_ms: median, min_ms: sorted[0],
    max_ms: sorted[m - 1], mean_ms: mean, images_per_s: batch / (median / 1000),
    peak_rss_mib: peakRSSMiB(),
  }) + '\n');
}
main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
