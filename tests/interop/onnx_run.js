// Runs ONNX models in ONNX Runtime (the onnxruntime-node package, CPU) for
// tests/interop/onnx_test.cpp.
//
//   node onnx_run.js ORT_PACKAGE_DIR JOBS.json
//
// JOBS: [{"model", "input", "rows", "width", "output"}]: input is raw little-endian float32,
// rows x width; each model runs on its rows in batches of 1, 7 and the rest (the batch dimension
// is dynamic), and the outputs are written to output, raw float32, concatenated. Prints one JSON
// object: per job the session's input and output names and the output width.
'use strict';
const fs = require('fs');

async function main() {
  const ort = require(process.argv[2]);
  const jobs = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
  const results = [];
  for (const job of jobs) {
    const session = await ort.InferenceSession.create(job.model);
    const bytes = fs.readFileSync(job.input);
    const x = new Float32Array(bytes.buffer, bytes.byteOffset, job.rows * job.width);
    const batches = [1, 7, job.rows - 8];
    const parts = [];
    let start = 0;
    let width = 0;
    for (const b of batches) {
      const chunk = x.slice(start * job.width, (start + b) * job.width);
      const feeds = {};
      feeds[session.inputNames[0]] = new ort.Tensor('float32', chunk, [b, job.width]);
      const out = (await session.run(feeds))[session.outputNames[0]];
      if (out.dims[0] !== b) throw new Error(`batch ${b} gave ${out.dims[0]} rows`);
      width = out.dims[1];
      parts.push(Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
      start += b;
    }
    fs.writeFileSync(job.output, Buffer.concat(parts));
    results.push({
      inputs: session.inputNames,
      outputs: session.outputNames,
      width: width,
      batches: batches,
    });
  }
  process.stdout.write(JSON.stringify({jobs: results}) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
