// Runs models `rune export` wrote, in ONNX Runtime for Node.js alone (docs/onnx.md):
//   node example.mjs classify vit.onnx /usr/share/datasets/fashion-mnist 8   (the first 8 test images; a cnn model alike)
//   node example.mjs translate numbers.onnx "seventy-one" "two hundred and thirty-four"
// classify: images (batch, C, S, S) of pixel values 0..255 -> logits, the class names from the
// metadata. translate: the encoder once, then the decoder step greedily, its cache fed back.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import ort from 'onnxruntime-node';
import { metadataOf } from './metadata.mjs';

const argmax = (row) => row.indexOf(Math.max(...row));

async function classify(path, pixels, n) {
  const meta = metadataOf(path);
  const classes = JSON.parse(meta.classes), C = Number(meta.in_chans), S = Number(meta.image_size);
  const session = await ort.InferenceSession.create(path);
  const { logits } = await session.run({ images: new ort.Tensor('float32', pixels, [n, C, S, S]) });
  const K = logits.dims[1];
  return Array.from({ length: n }, (_, i) => classes[argmax(logits.data.subarray(i * K, (i + 1) * K))]);
}

// A gzipped IDX file of Fashion-MNIST or MNIST: its first n images as floats (n, 1, S, S).
function idxImages(file, n) {
  const bytes = gunzipSync(readFileSync(file));
  const S = bytes.readUInt32BE(8);
  return Float32Array.from(bytes.subarray(16, 16 + n * S * S));
}

async function translate(path, sentences) {
  const base = path.replace(/\.onnx$/, '');
  const encoder = await ort.InferenceSession.create(`${base}-encoder.onnx`);
  const decoder = await ort.InferenceSession.create(`${base}-decoder.onnx`);
  const meta = metadataOf(`${base}-encoder.onnx`);
  const source = new Map(JSON.parse(meta.source_vocabulary).map((token, id) => [token, id]));
  const target = JSON.parse(meta.target_vocabulary);
  const [pad, bos, eos, unk] = ['pad_id', 'bos_id', 'eos_id', 'unk_id'].map((key) => Number(meta[key]));
  if (meta.tokenization !== 'word') throw new Error(`this example splits words, the model reads ${meta.tokenization}`);
  // each source `tokens <eos>`, at most max_source_tokens tokens; the rows padded with pad_id
  const rows = sentences.map((s) => [
    ...s.split(/\s+/).filter(Boolean).map((w) => source.get(w) ?? unk).slice(0, Number(meta.max_source_tokens)),
    eos,
  ]);
  const B = rows.length, N = Math.max(...rows.map((r) => r.length));
  const src = new BigInt64Array(B * N).fill(BigInt(pad));
  rows.forEach((r, b) => r.forEach((id, t) => { src[b * N + t] = BigInt(id); }));
  const { memory, src_padding_mask } = await encoder.run({ src: new ort.Tensor('int64', src, [B, N]) });
  // the self-attention cache of every decoder layer, empty (past_length 0) before the first step
  const L = Number(meta.decoder_layers), H = Number(meta.kv_heads), D = Number(meta.head_dim);
  const past = {};
  for (let l = 0; l < L; ++l)
    for (const kv of ['key', 'value']) past[`past_${kv}_${l}`] = new ort.Tensor('float32', new Float32Array(0), [B, H, 0, D]);
  let tokens = rows.map(() => bos);
  const words = rows.map(() => []), done = rows.map(() => false);
  for (let t = 0; t < Number(meta.max_decode_steps) && !done.every(Boolean); ++t) {
    const out = await decoder.run({
      token: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [B, 1]),
      position: new ort.Tensor('int64', BigInt64Array.of(BigInt(t)), [1]),
      memory, src_padding_mask, ...past,
    });
    for (let l = 0; l < L; ++l)
      for (const kv of ['key', 'value']) past[`past_${kv}_${l}`] = out[`present_${kv}_${l}`];
    const V = out.logits.dims[1];
    tokens = tokens.map((_, b) => argmax(out.logits.data.subarray(b * V, (b + 1) * V)));
    tokens.forEach((id, b) => {
      if (done[b]) return;
      if (id === eos || id === pad) done[b] = true;
      else words[b].push(target[id]);
    });
  }
  return words.map((w) => w.join(' '));
}

const [kind, path, ...rest] = process.argv.slice(2);
if (kind === 'classify') {
  const n = Number(rest[1] ?? 8);
  const names = await classify(path, idxImages(`${rest[0]}/t10k-images-idx3-ubyte.gz`, n), n);
  names.forEach((name, i) => console.log(`test image ${i}: ${name}`));
} else if (kind === 'translate') {
  const out = await translate(path, rest);
  out.forEach((t, i) => console.log(`${rest[i]} -> ${t}`));
} else {
  console.error('usage: node example.mjs classify vit.onnx IDX_DIR [N] | translate model.onnx SENTENCE...');
  process.exit(2);
}
