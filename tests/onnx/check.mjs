// Runs the ONNX models `rune export` writes in ONNX Runtime (onnxruntime-node, CPU) and compares
// them with what rune computed, so that the export is checked in a runtime other than ours.
//
//   node check.mjs vit|cnn --model M.onnx --images DIR --predictions P.csv [--count 64] [--tolerance 1e-4]
//     the first --count test images of DIR (IDX files of Fashion-MNIST / MNIST, gzipped or not, or
//     CIFAR-10's test_batch.bin) through the image classifier (the ViT's or the ResNet's graph: the
//     same input and output; the model's metadata must name the task, rune.task); their logits
//     against `rune eval --split test --predictions P.csv`: max |difference| within --tolerance
//     and the same predicted classes.
//   node check.mjs translation --encoder E.onnx --decoder D.onnx --sources S.txt --rune R.tsv [--tolerance 1e-4]
//     every line of S.txt greedily decoded with the encoder and the decoder step (its cache fed
//     back), against `rune translate CKPT --scores < S.txt > R.tsv`: the same translations, and
//     each translation's log-probability (teacher-forced through the decoder step, <eos>
//     included, as --scores computes it) within --tolerance.
//   node check.mjs tensors --model M.onnx --spec spec.json [--tolerance 1e-4]
//     any graph on the inputs spec.json names, its outputs against the files rune wrote (the
//     convolutional builders' test, tests/test_onnx_layers_e2e.cpp).
//
// Prints the figures, one per line; exits 1 naming what differs, 2 on a usage error.
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { metadataOf } from './metadata.mjs';

// ------------------------------------------------------------------ the image classifiers (vit, cnn)

function readIdx(dir, stem) {
  for (const name of [stem, `${stem}.gz`]) {
    const path = `${dir}/${name}`;
    if (!existsSync(path)) continue;
    let bytes = readFileSync(path);
    if (name.endsWith('.gz')) bytes = gunzipSync(bytes);
    const rank = bytes[3], dims = [];
    for (let i = 0; i < rank; ++i) dims.push(bytes.readUInt32BE(4 + 4 * i));
    return { dims, data: bytes.subarray(4 + 4 * rank) };
  }
  throw new Error(`${dir} has no ${stem} (nor ${stem}.gz)`);
}

// The first `count` test images as pixel values (count, C, S, S), and their labels.
function testImages(dir, dataset, count) {
  if (dataset === 'cifar10') {
    const bytes = readFileSync(`${dir}/test_batch.bin`), image = 3 * 32 * 32;
    const n = Math.min(count, bytes.length / (image + 1));
    const pixels = new Float32Array(n * image), labels = [];
    for (let i = 0; i < n; ++i) {
      labels.push(bytes[i * (image + 1)]);
      for (let k = 0; k < image; ++k) pixels[i * image + k] = bytes[i * (image + 1) + 1 + k];
    }
    return { pixels, labels, n, C: 3, S: 32 };
  }
  const images = readIdx(dir, 't10k-images-idx3-ubyte'), labels = readIdx(dir, 't10k-labels-idx1-ubyte');
  const [total, H, W] = images.dims;
  if (H !== W) throw new Error(`${dir}: images of ${H}x${W} pixels are not square`);
  const n = Math.min(count, total), image = H * W;
  const pixels = Float32Array.from(images.data.subarray(0, n * image));
  return { pixels, labels: Array.from(labels.data.subarray(0, n)), n, C: 1, S: H };
}

function readPredictions(path) {
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  const header = lines[0].split(',');
  const first = header.indexOf('logit_0');
  if (header[0] !== 'index' || first < 0) throw new Error(`${path}: not rune eval --predictions of an image classifier (header ${lines[0]})`);
  const rows = new Map();
  for (const line of lines.slice(1)) {
    const cells = line.split(',');
    rows.set(Number(cells[0]), { predicted: Number(cells[header.indexOf('predicted')]), logits: cells.slice(first).map(Number) });
  }
  return rows;
}

const argmax = (values, offset, length) => {
  let best = 0;
  for (let k = 1; k < length; ++k) if (values[offset + k] > values[offset + best]) best = k;
  return best;
};

async function checkImageClassifier(args) {
  const meta = metadataOf(args.model);
  if (meta['rune.task'] !== args.kind)
    throw new Error(`${args.model} is a model of the task "${meta['rune.task']}", not ${args.kind}`);
  const size = Number(meta.image_size);
  const { pixels, labels, n, C, S } = testImages(args.images, meta.dataset, Number(args.count ?? 64));
  if (S !== size)
    throw new Error(`the model reads ${size}x${size} images, ${args.images} holds ${S}x${S} (resize "${meta.resize}" is not done here)`);
  const session = await ort.InferenceSession.create(args.model);
  const start = performance.now();
  const out = await session.run({ images: new ort.Tensor('float32', pixels, [n, C, S, S]) });
  const ms = performance.now() - start;
  const logits = out.logits.data, K = out.logits.dims[1];
  const rune = readPredictions(args.predictions);
  let maxDiff = 0, same = 0, correct = 0;
  for (let i = 0; i < n; ++i) {
    const row = rune.get(i);
    if (!row || row.logits.length !== K) throw new Error(`${args.predictions}: no ${K} logits for test image ${i}`);
    for (let k = 0; k < K; ++k) maxDiff = Math.max(maxDiff, Math.abs(logits[i * K + k] - row.logits[k]));
    const predicted = argmax(logits, i * K, K);
    same += predicted === row.predicted;
    correct += predicted === labels[i];
  }
  const tolerance = Number(args.tolerance ?? 1e-4);
  console.log(`${args.kind}: ${n} test images of ${args.images}, ${K} classes, ONNX Runtime ${ort.env.versions.node}`);
  console.log(`max |logit difference| against rune: ${maxDiff.toExponential(3)} (tolerance ${tolerance})`);
  console.log(`predicted classes equal: ${same} of ${n}; ONNX Runtime top-1 on them: ${correct} of ${n}`);
  console.log(`ONNX Runtime: ${ms.toFixed(1)} ms for the batch of ${n}`);
  const failures = [];
  if (!(maxDiff <= tolerance)) failures.push(`logits differ by ${maxDiff} > ${tolerance}`);
  if (same !== n) failures.push(`${n - same} predicted classes differ`);
  return failures;
}

// ------------------------------------------------------------------ the translation model

// Tokens as the checkpoint's task reads them (metadata tokenization), cut to max_source_tokens.
function tokenize(text, meta) {
  if (meta.tokenization === 'word') return text.split(/[ \t\n\v\f\r]+/).filter((t) => t.length > 0);
  if (meta.tokenization === 'char') return Array.from(text);
  throw new Error(`tokenization "${meta.tokenization}" needs a SentencePiece tokenizer, which this script does not have`);
}

function ids(text, vocabulary, meta, cut) {
  const unk = Number(meta.unk_id);
  return tokenize(text, meta).map((t) => vocabulary.get(t) ?? unk).slice(0, cut);
}

// Rows of ids padded to the longest, as an int64 tensor (B, T).
function padded(rows, pad) {
  const T = Math.max(1, ...rows.map((r) => r.length));
  const data = new BigInt64Array(rows.length * T).fill(BigInt(pad));
  rows.forEach((r, b) => r.forEach((id, t) => { data[b * T + t] = BigInt(id); }));
  return new ort.Tensor('int64', data, [rows.length, T]);
}

// One decoder step for every row: the next token of each (B), at `position`; returns log_probs
// (B, V) and logits, and keeps the present cache as the next step's past.
async function step(decoder, state, tokens, position) {
  const feeds = {
    token: new ort.Tensor('int64', BigInt64Array.from(tokens.map(BigInt)), [tokens.length, 1]),
    position: new ort.Tensor('int64', BigInt64Array.from([BigInt(position)]), [1]),
    memory: state.memory,
    src_padding_mask: state.mask,
  };
  for (let l = 0; l < state.layers; ++l) {
    feeds[`past_key_${l}`] = state.past[2 * l];
    feeds[`past_value_${l}`] = state.past[2 * l + 1];
  }
  const out = await decoder.run(feeds);
  state.past = [];
  for (let l = 0; l < state.layers; ++l) state.past.push(out[`present_key_${l}`], out[`present_value_${l}`]);
  return out;
}

async function encode(encoder, meta, sources) {
  const vocabulary = new Map(JSON.parse(meta.source_vocabulary).map((t, i) => [t, i]));
  const eos = Number(meta.eos_id), cut = Number(meta.max_source_tokens);
  const rows = sources.map((s) => [...ids(s, vocabulary, meta, cut), eos]);
  const out = await encoder.run({ src: padded(rows, Number(meta.pad_id)) });
  const B = sources.length, layers = Number(meta.decoder_layers), H = Number(meta.kv_heads), D = Number(meta.head_dim);
  const empty = () => new ort.Tensor('float32', new Float32Array(0), [B, H, 0, D]);
  return { memory: out.memory, mask: out.src_padding_mask, layers, past: Array.from({ length: 2 * layers }, empty) };
}

// Greedy decoding with the cache: bos first, then each step's argmax, until <eos> or max_decode_steps.
async function greedy(encoder, decoder, meta, sources) {
  const state = await encode(encoder, meta, sources);
  const target = JSON.parse(meta.target_vocabulary);
  const bos = Number(meta.bos_id), eos = Number(meta.eos_id), pad = Number(meta.pad_id);
  const B = sources.length, steps = Number(meta.max_decode_steps);
  const out = sources.map(() => []), done = sources.map(() => false);
  let next = sources.map(() => bos);
  for (let t = 0; t < steps && !done.every(Boolean); ++t) {
    const { logits } = await step(decoder, state, next, t);
    const V = logits.dims[1];
    next = next.map((_, b) => argmax(logits.data, b * V, V));
    next.forEach((id, b) => {
      if (done[b]) return;
      if (id === eos || id === pad) done[b] = true;
      else out[b].push(target[id]);
    });
  }
  const join = meta.tokenization === 'word' ? ' ' : '';
  return out.map((tokens) => tokens.join(join));
}

// log P(target | source) teacher-forced through the decoder step: the sum over target tokens and
// <eos> of log_probs, as `rune translate --scores` computes it.
async function scores(encoder, decoder, meta, pairs) {
  const state = await encode(encoder, meta, pairs.map((p) => p[0]));
  const vocabulary = new Map(JSON.parse(meta.target_vocabulary).map((t, i) => [t, i]));
  const bos = Number(meta.bos_id), eos = Number(meta.eos_id), pad = Number(meta.pad_id);
  const targets = pairs.map((p) => [...ids(p[1], vocabulary, meta, Number(meta.max_target_tokens)), eos]);
  const T = Math.max(...targets.map((t) => t.length));
  const sum = pairs.map(() => 0);
  for (let t = 0; t < T; ++t) {
    const inputs = targets.map((r) => (t === 0 ? bos : r[t - 1] ?? pad));
    const { log_probs } = await step(decoder, state, inputs, t);
    const V = log_probs.dims[1];
    targets.forEach((r, b) => { if (t < r.length) sum[b] += log_probs.data[b * V + r[t]]; });
  }
  return sum;
}

async function checkTranslation(args) {
  const meta = metadataOf(args.encoder);
  const sources = readFileSync(args.sources, 'utf8').split('\n').filter((l) => l.length > 0);
  const rune = readFileSync(args.rune, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => {
    const tab = l.lastIndexOf('\t');
    if (tab < 0) throw new Error(`${args.rune}: "${l}" has no tab: write it with rune translate --scores`);
    return { text: l.slice(0, tab), logp: Number(l.slice(tab + 1)) };
  });
  if (rune.length !== sources.length)
    throw new Error(`${args.sources} has ${sources.length} sentences, ${args.rune} ${rune.length} translations`);
  const encoder = await ort.InferenceSession.create(args.encoder);
  const decoder = await ort.InferenceSession.create(args.decoder);
  const start = performance.now();
  const translations = await greedy(encoder, decoder, meta, sources);
  const ms = performance.now() - start;
  const logp = await scores(encoder, decoder, meta, sources.map((s, i) => [s, translations[i]]));
  let equal = 0, maxDiff = 0;
  const differing = [];
  translations.forEach((t, i) => {
    if (t === rune[i].text) equal += 1;
    else if (differing.length < 5) differing.push(`"${sources[i]}": ONNX "${t}", rune "${rune[i].text}"`);
    maxDiff = Math.max(maxDiff, Math.abs(logp[i] - rune[i].logp));
  });
  const tolerance = Number(args.tolerance ?? 1e-4);
  console.log(`translation: ${sources.length} sentences of ${args.sources}, ONNX Runtime ${ort.env.versions.node}`);
  console.log(`translations equal: ${equal} of ${sources.length}`);
  console.log(`max |log-probability difference| against rune: ${maxDiff.toExponential(3)} (tolerance ${tolerance})`);
  console.log(`ONNX Runtime: ${ms.toFixed(1)} ms to encode and greedy-decode all ${sources.length} in one batch`);
  const failures = differing.map((d) => `translations differ: ${d}`);
  if (!(maxDiff <= tolerance)) failures.push(`log-probabilities differ by ${maxDiff} > ${tolerance}`);
  return failures;
}

// ------------------------------------------------------------------ any graph, on given tensors

// spec.json: {"inputs": [{"name", "file", "dims"}], "outputs": [{"name", "file"}]}, each file raw
// little-endian float32 (what a C++ test wrote from rune's tensors).
async function checkTensors(args) {
  const spec = JSON.parse(readFileSync(args.spec, 'utf8'));
  const floats = (file) => {
    const b = readFileSync(file);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  };
  const feeds = {};
  for (const i of spec.inputs) feeds[i.name] = new ort.Tensor('float32', floats(i.file), i.dims);
  const session = await ort.InferenceSession.create(args.model);
  const out = await session.run(feeds);
  const tolerance = Number(args.tolerance ?? 1e-4);
  const failures = [];
  for (const o of spec.outputs) {
    const want = floats(o.file), got = out[o.name].data;
    if (got.length !== want.length) {
      failures.push(`${o.name}: ${got.length} values, rune's ${want.length}`);
      continue;
    }
    let maxDiff = 0;
    for (let k = 0; k < got.length; ++k) maxDiff = Math.max(maxDiff, Math.abs(got[k] - want[k]));
    console.log(`${o.name} [${out[o.name].dims}]: max |difference| against rune ${maxDiff.toExponential(3)} (tolerance ${tolerance})`);
    if (!(maxDiff <= tolerance)) failures.push(`${o.name} differs by ${maxDiff} > ${tolerance}`);
  }
  return failures;
}

// ------------------------------------------------------------------ the command line

function parse(argv) {
  const args = { kind: argv[0] };
  for (let i = 1; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) throw new Error(`unexpected argument "${argv[i]}"`);
    args[argv[i].slice(2)] = argv[i + 1];
  }
  const need = {
    vit: ['model', 'images', 'predictions'],
    cnn: ['model', 'images', 'predictions'],
    translation: ['encoder', 'decoder', 'sources', 'rune'],
    tensors: ['model', 'spec'],
  }[args.kind];
  if (!need) throw new Error('the first argument is vit, cnn, translation or tensors');
  for (const key of need) if (!args[key]) throw new Error(`${args.kind} needs --${key}`);
  return args;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let args;
  try {
    args = parse(process.argv.slice(2));
  } catch (e) {
    console.error(`check.mjs: ${e.message}\nusage: node check.mjs vit|cnn --model M.onnx --images DIR --predictions P.csv ` +
                  `[--count 64] | translation --encoder E.onnx --decoder D.onnx --sources S.txt --rune R.tsv | ` +
                  `tensors --model M.onnx --spec spec.json`);
    process.exit(2);
  }
  try {
    const check = { vit: checkImageClassifier, cnn: checkImageClassifier, translation: checkTranslation, tensors: checkTensors }[args.kind];
    const failures = await check(args);
    for (const f of failures) console.error(`FAILED: ${f}`);
    process.exit(failures.length ? 1 : 0);
  } catch (e) {
    console.error(`FAILED: ${e.message}`);
    process.exit(1);
  }
}
