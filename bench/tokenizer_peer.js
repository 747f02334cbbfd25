// bench/tokenizer_peer.js — the Hugging Face `tokenizers` side of bench/tokenizer_run.sh (the Rust
// library through its Node binding, from tests/fixtures/tokenizers/node_modules).
//
//   node tokenizer_peer.js --tokenizer FILE --docs FILE.jsonl [--runs N] [--name NAME]
//       Encodes all documents with one encodeBatch call (addSpecialTokens false): Rust encodes them
//       in parallel on rayon's pool, RAYON_NUM_THREADS threads (the caller sets it; rayon reads it
//       when its pool starts).  One untimed warm-up call, then --runs timed calls; the best gives
//       MB/s = UTF-8 bytes of the documents / 1e6 / seconds.  Prints one line of JSON.
//
//   node tokenizer_peer.js --prepare OUT.jsonl --target-mb MB [--corpus DIR] [--fallback F1,F2]
//       Writes the benchmark documents: the 'text' fields of DIR/ja_handbook.jsonl,
//       en_handbook.jsonl and ja_manpages.jsonl (in that order, up to MB megabytes), or, without
//       DIR, the fallback text files repeated to MB megabytes; split on blank lines and regrouped
//       into documents of about 4 KB.  Prints a summary line.
'use strict';
const fs = require('fs');
const path = require('path');

function args() {
  const a = {runs: 3, targetMb: 5};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(flag + ' needs a value');
    if (flag === '--tokenizer') a.tokenizer = value;
    else if (flag === '--docs') a.docs = value;
    else if (flag === '--runs') a.runs = parseInt(value, 10);
    else if (flag === '--name') a.name = value;
    else if (flag === '--prepare') a.prepare = value;
    else if (flag === '--target-mb') a.targetMb = parseFloat(value);
    else if (flag === '--corpus') a.corpus = value;
    else if (flag === '--fallback') a.fallback = value.split(',');
    else throw new Error('unknown flag ' + flag);
  }
  return a;
}

// Paragraphs (split on blank lines) regrouped into documents of about `size` bytes.
function chunk(texts, size) {
  const docs = [];
  let cur = [];
  let curBytes = 0;
  for (const text of texts) {
    for (const para of text.split(/\n[ \t]*\n/)) {
      if (para.trim() === '') continue;
      cur.push(para);
      curBytes += Buffer.byteLength(para, 'utf8') + 2;
      if (curBytes >= size) {
        docs.push(cur.join('\n\n'));
        cur = [];
        curBytes = 0;
      }
    }
    if (cur.length) {  // documents never span two source texts
      docs.push(cur.join('\n\n'));
      cur = [];
      curBytes = 0;
    }
  }
  return docs;
}

function prepare(a) {
  const target = a.targetMb * 1e6;
  const texts = [];
  let bytes = 0;
  let source;
  if (a.corpus) {
    source = a.corpus;
    outer: for (const name of ['ja_handbook', 'en_handbook', 'ja_manpages']) {
      const lines = fs.readFileSync(path.join(a.corpus, name + '.jsonl'), 'utf8').split('\n');
      for (const line of lines) {
        if (line.trim() === '') continue;
        const text = JSON.parse(line).text;
        if (typeof text !== 'string' || text === '') continue;
        texts.push(text);
        bytes += Buffer.byteLength(text, 'utf8');
        if (bytes >= target) break outer;
      }
    }
  } else {
    source = a.fallback.join(' + ');
    const pieces = a.fallback.map((f) => fs.readFileSync(f, 'utf8'));
    const one = pieces.reduce((n, p) => n + Buffer.byteLength(p, 'utf8'), 0);
    if (one === 0) throw new Error('fallback texts are empty');
    while (bytes < target) {
      for (const p of pieces) texts.push(p);
      bytes += one;
    }
  }
  const docs = chunk(texts, 4096);
  const total = docs.reduce((n, d) => n + Buffer.byteLength(d, 'utf8'), 0);
  fs.writeFileSync(a.prepare, docs.map((text) => JSON.stringify({text})).join('\n') + '\n');
  console.log(`${docs.length} documents, ${total} bytes (UTF-8), from ${source}`);
}

async function bench(a) {
  const {Tokenizer} = require(
    path.join(__dirname, '../tests/fixtures/tokenizers/node_modules/tokenizers'));
  const docs = fs.readFileSync(a.docs, 'utf8').split('\n').filter((l) => l !== '')
                   .map((l) => JSON.parse(l).text);
  const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d, 'utf8'), 0);
  const loadStart = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(a.tokenizer);
  const loadS = Number(process.hrtime.bigint() - loadStart) / 1e9;
  const options = {addSpecialTokens: false};
  const count = (encodings) => encodings.reduce((n, e) => n + e.getLength(), 0);

  const tokens = count(await tok.encodeBatch(docs, options));  // warm-up
  const times = [];
  for (let r = 0; r < a.runs; r++) {
    const start = process.hrtime.bigint();
    const encodings = await tok.encodeBatch(docs, options);
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
    if (count(encodings) !== tokens) throw new Error('token count changed between runs');
  }
  const best = Math.min(...times);
  const threads = parseInt(process.env.RAYON_NUM_THREADS || '0', 10) || null;
  const mbPerS = bytes / 1e6 / best;
  console.log(JSON.stringify({
    impl: 'hf-tokenizers',
    tokenizer: a.name || a.tokenizer,
    threads,
    docs: docs.length,
    bytes,
    tokens,
    load_s: loadS,
    run_s: times,
    best_s: best,
    mb_per_s: mbPerS,
    mb_per_s_per_thread: threads ? mbPerS / threads : null,
  }));
}

async function main() {
  const a = args();
  if (a.prepare) {
    if (!a.corpus && !a.fallback) throw new Error('--prepare needs --corpus or --fallback');
    prepare(a);
  } else {
    if (!a.tokenizer || !a.docs) throw new Error('--tokenizer and --docs are required');
    if (!(a.runs > 0)) throw new Error('--runs must be a positive integer');
    await bench(a);
  }
}

main().catch((e) => {
  console.error('tokenizer_peer.js: ' + (e && e.message ? e.message : e));
  process.exit(1);
});
