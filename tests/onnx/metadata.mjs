// The metadata_props of an ONNX model file (what `rune export` writes there: vocabularies,
// special ids, class names), read from its protobuf bytes: ONNX Runtime does not hand them out.
// ModelProto field 14 holds them, each a message of key (field 1) and value (field 2).
import { readFileSync } from 'node:fs';

export function metadataOf(path) {
  const bytes = readFileSync(path);
  const varint = (p) => {  // [value, next position]
    let value = 0, scale = 1;
    for (;;) {
      if (p.at >= bytes.length) throw new Error(`${path}: not a whole protobuf message`);
      const b = bytes[p.at++];
      value += (b & 0x7f) * scale;
      if (!(b & 0x80)) return value;
      scale *= 128;
    }
  };
  // calls visit(field, start, end) for each length-delimited field of bytes [p.at, end)
  const fields = (p, end, visit) => {
    while (p.at < end) {
      const tag = varint(p), wire = tag % 8;
      if (wire === 0) varint(p);
      else if (wire === 1) p.at += 8;
      else if (wire === 5) p.at += 4;
      else if (wire === 2) {
        const length = varint(p), start = p.at;
        p.at += length;
        visit(Math.floor(tag / 8), start, p.at);
      } else throw new Error(`${path}: protobuf wire type ${wire} is not one a model has`);
    }
  };
  const meta = {};
  fields({ at: 0 }, bytes.length, (field, start, end) => {
    if (field !== 14) return;
    const entry = {};
    fields({ at: start }, end, (f, s, e) => { entry[f] = bytes.subarray(s, e).toString('utf8'); });
    meta[entry[1]] = entry[2] ?? '';
  });
  return meta;
}
