import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { decodeImage, type Fit, toModelRgb } from '../image-files.js';
import { IMAGE_SIZE } from '../images.js';
import { readShard, ShardError } from '../shard.js';
import { Tokenizer } from '../tokenizer.js';
import { type BuildOptions, importShard } from './build.js';
import { readImageFolder } from './image-folder.js';
import { readLlava } from './llava.js';
import { DEFAULT_LIMITS, type ImportLimits, ShardImportError } from './source.js';

// A small vocabulary with the words of the fixtures and of the built-in 'is it a flag ?' question.
const tokenizer = new Tokenizer(
  ['<pad>', '<unk>', '<bos>', '<eos>', ':', '?', 'question', 'answer'].concat(
    'what is this it a flag colour yes no red blue green cat dog of'.split(' '),
  ),
);
const PLANE = IMAGE_SIZE * IMAGE_SIZE;

type Rgba = [number, number, number, number];

function png(width: number, height: number, pixel: (x: number, y: number) => Rgba): Buffer {
  const img = new PNG({ width, height });
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) img.data.set(pixel(x, y), 4 * (y * width + x));
  return PNG.sync.write(img);
}

function jpg(width: number, height: number, pixel: (x: number, y: number) => Rgba): Buffer {
  const data = Buffer.alloc(4 * width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(x, y), 4 * (y * width + x));
  return jpeg.encode({ width, height, data }, 95).data;
}

const solid = (c: Rgba) => () => c;
const RED: Rgba = [255, 0, 0, 255];
const BLUE: Rgba = [0, 0, 255, 255];

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'fednano-shard-import-'));
}

function options(over: Partial<BuildOptions> = {}): BuildOptions & { replace?: boolean } {
  return {
    tokenizer,
    maxPromptTokens: 15,
    domain: 'auto',
    channels: 'auto',
    fit: 'pad',
    limits: DEFAULT_LIMITS,
    skipInvalid: false,
    ...over,
  };
}

const turn = (question: string, answer: string) => [
  { from: 'human', value: `<image>\n${question}` },
  { from: 'gpt', value: answer },
];

/** A folder of three colour PNGs and a JSONL with two questions each (one built-in type, one custom). */
async function llavaFixture(records?: unknown[]): Promise<{ dir: string; file: string }> {
  const dir = await tmp();
  await mkdir(join(dir, 'img'));
  await writeFile(join(dir, 'img', 'red.png'), png(40, 40, solid(RED)));
  await writeFile(join(dir, 'img', 'blue.png'), png(40, 40, solid(BLUE)));
  await writeFile(
    join(dir, 'img', 'flag.png'),
    png(56, 56, (x) => (x < 28 ? RED : BLUE)),
  );
  const file = join(dir, 'questions.jsonl');
  const rows = records ?? [
    {
      id: 1,
      image: 'img/red.png',
      conversations: [...turn('What colour is this?', 'Red.'), ...turn('Is it a flag?', 'no')],
    },
    {
      id: 2,
      image: 'img/blue.png',
      conversations: [...turn('What colour is this?', 'blue'), ...turn('Is it a flag?', 'no')],
    },
    { id: 3, image: 'img/flag.png', conversations: turn('Is it a flag?', 'Yes') },
  ];
  await writeFile(file, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return { dir, file };
}

const llava = (file: string, limits: ImportLimits = DEFAULT_LIMITS, skip = false) =>
  readLlava(file, undefined, limits, skip);

describe('fednano shard: LLaVA-style questions', () => {
  test('JSONL: built-in and custom question types, normalised answers, a shard the client-agent reads', async () => {
    const { dir, file } = await llavaFixture();
    const out = join(dir, 'shard');
    const summary = await importShard(out, await llava(file), options());
    assert.equal(summary.domain, 'emoji'); // 'is it a flag ?' is an emoji question type
    assert.equal(summary.channels, 3);
    assert.equal(summary.images, 3);
    assert.equal(summary.questions, 5);
    assert.deepEqual(
      summary.types.map((t) => [t.type, t.builtIn, t.questions, t.candidates]),
      [
        ['custom.what-colour-is-this', false, 2, 2],
        ['emoji.flag', true, 3, 2],
      ],
    );
    assert.deepEqual(summary.answerVocabulary, { hits: 5, misses: 0 });

    const shard = await readShard(out);
    const set = shard.sets.get('emoji')!;
    assert.equal(set.channels, 3);
    const colour = shard.questions.filter((q) => q.type === 'custom.what-colour-is-this');
    assert.deepEqual(
      colour.map((q) => [q.question, q.answer, q.answers]),
      [
        ['what colour is this ?', 'red', ['blue', 'red']],
        ['what colour is this ?', 'blue', ['blue', 'red']],
      ],
    );
    assert.equal(shard.questions.filter((q) => q.type === 'emoji.flag').at(-1)!.answers, undefined);
    // The red image: the red plane all 255, green and blue all 0.
    const red = set.pixels.subarray(0, 3 * PLANE);
    assert.ok(red.subarray(0, PLANE).every((v) => v === 255) && red.subarray(PLANE).every((v) => v === 0));
  });

  test('a JSON array of grey JPEGs makes a grey shard; nothing matches a built-in type, so domain fashion', async () => {
    const dir = await tmp();
    await writeFile(join(dir, 'a.jpg'), jpg(30, 30, solid([200, 200, 200, 255])));
    await writeFile(join(dir, 'b.jpeg'), jpg(64, 48, solid([40, 40, 40, 255])));
    const file = join(dir, 'data.json');
    await writeFile(
      file,
      JSON.stringify([
        { image: 'a.jpg', conversations: turn('is this a cat?', 'yes') },
        { image: 'b.jpeg', conversations: turn('is this a cat?', 'no') },
      ]),
    );
    const out = join(dir, 'shard');
    const summary = await importShard(out, await llava(file), options({ fit: 'crop' }));
    assert.equal(summary.channels, 1);
    assert.equal(summary.domain, 'fashion');
    const set = (await readShard(out)).sets.get('fashion')!;
    assert.equal(set.pixels.length, 2 * PLANE);
    assert.ok(Math.abs(set.pixels[0]! - 200) <= 2 && Math.abs(set.pixels[PLANE + 400]! - 40) <= 2);
  });

  test('bad input is one clear error naming the file, and nothing is written', async () => {
    const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
      ['missing image', async () => {}, /ghost\.png: image file not found \(fix it, or pass --skip-invalid/],
      [
        'corrupt PNG',
        async (dir) => {
          await writeFile(join(dir, 'img', 'ghost.png'), Buffer.concat([png(4, 4, solid(RED)).subarray(0, 40)]));
        },
        /img\/ghost\.png: not a valid PNG/,
      ],
      [
        'not an image',
        async (dir) => {
          await writeFile(join(dir, 'img', 'ghost.png'), 'GIF89a...');
        },
        /img\/ghost\.png: not a PNG or JPEG file/,
      ],
    ];
    for (const [name, prepare, message] of cases) {
      const { dir, file } = await llavaFixture([
        { image: 'img/red.png', conversations: turn('what colour is this ?', 'red') },
        { image: 'img/ghost.png', conversations: turn('what colour is this ?', 'blue') },
      ]);
      await prepare(dir);
      const out = join(dir, 'shard');
      await assert.rejects(
        async () => importShard(out, await llava(file), options()),
        (e: unknown) => e instanceof ShardImportError && message.test(e.message) && !e.message.includes('\n'),
        name,
      );
      assert.deepEqual((await readdir(dir)).sort(), ['img', 'questions.jsonl'], `${name}: nothing written`);
    }
  });

  test('unknown answers, long answers and built-in answers out of their set name the record', async () => {
    const bad: [unknown, RegExp][] = [
      [turn('what colour is this ?', 'purple'), /questions\.jsonl:1: answer 'purple' is not in the model's vocabulary/],
      [turn('what colour is this ?', 'a red one'), /questions\.jsonl:1: answer 'a red one' is 3 words/],
      [
        turn('is it a flag ?', 'red'),
        /questions\.jsonl:1: answer 'red' is not one of emoji\.flag's answers \(yes, no\)/,
      ],
      [[{ from: 'human', value: 'what ?' }], /questions\.jsonl:1: conversation turn 2 should be \{"from": "gpt"/],
    ];
    for (const [conversations, message] of bad) {
      const { dir, file } = await llavaFixture([{ image: 'img/red.png', conversations }]);
      await assert.rejects(async () => importShard(join(dir, 'shard'), await llava(file), options()), message);
    }
    const { file } = await llavaFixture([{ image: '../outside.png', conversations: turn('what ?', 'red') }]);
    await assert.rejects(llava(file), /image '\.\.\/outside\.png' is outside the image folder/);
  });

  test('a question longer than the model reads is refused with the limit', async () => {
    const { dir, file } = await llavaFixture([
      { image: 'img/red.png', conversations: turn('what is this what is this what is this ?', 'red') },
    ]);
    await assert.rejects(
      async () => importShard(join(dir, 'shard'), await llava(file), options({ maxPromptTokens: 10 })),
      /question 'what is this what is this what is this \?' is 10 words; the model reads at most 6/,
    );
  });

  test('--skip-invalid: bad records become refusals listed in the summary, the rest is written', async () => {
    const { dir, file } = await llavaFixture([
      { image: 'img/red.png', conversations: turn('what colour is this ?', 'red') },
      { image: 'img/blue.png', conversations: turn('what colour is this ?', 'purple') },
      { image: 'img/ghost.png', conversations: turn('what colour is this ?', 'blue') },
      { conversations: turn('what colour is this ?', 'blue') },
    ]);
    await writeFile(file, `${await readFile(file, 'utf8')}{not json\n`);
    const summary = await importShard(join(dir, 'shard'), await llava(file, DEFAULT_LIMITS, true), {
      ...options(),
      skipInvalid: true,
    });
    assert.equal(summary.questions, 1);
    assert.deepEqual(
      summary.refusedImages.map((r) => [r.where.replace(dir, ''), r.reason]),
      [
        ['/img/ghost.png', 'image file not found'],
        ['/img/blue.png', 'none of its questions was usable'],
      ],
    );
    assert.deepEqual(
      summary.refusedQuestions.map((r) => r.where.replace(dir, '')),
      ['/questions.jsonl:5', '/questions.jsonl:4', '/questions.jsonl:2', '/questions.jsonl:3'],
    );
    assert.deepEqual(summary.answerVocabulary, { hits: 1, misses: 1 });
    assert.match(summary.warnings.join('\n'), /custom\.what-colour-is-this: every question has the answer 'red'/);
  });

  test('limits: too many images, too many bytes, too large an image', async () => {
    const { dir, file } = await llavaFixture();
    const out = join(dir, 'shard');
    await assert.rejects(
      async () => importShard(out, await llava(file), options({ limits: { ...DEFAULT_LIMITS, maxImages: 2 } })),
      /3 images referenced, more than --max-images 2; split the data/,
    );
    await assert.rejects(
      async () => importShard(out, await llava(file), options({ limits: { ...DEFAULT_LIMITS, maxBytes: 200 } })),
      /img\/\w+\.png: the images pass --max-bytes 200 here/,
    );
    await assert.rejects(
      async () => importShard(out, await llava(file), options({ limits: { ...DEFAULT_LIMITS, maxDimension: 50 } })),
      /img\/flag\.png: 56x56 pixels, larger than --max-dimension 50/,
    );
    assert.deepEqual((await readdir(dir)).sort(), ['img', 'questions.jsonl']);
  });
});

describe('fednano shard: ImageFolder', () => {
  test('root/<class>/*: one classification question per image, every class a candidate', async () => {
    const root = await tmp();
    await mkdir(join(root, 'cat'));
    await mkdir(join(root, 'Dog'));
    await writeFile(join(root, 'cat', '1.png'), png(28, 28, solid(RED)));
    await writeFile(join(root, 'cat', '2.PNG'), png(28, 28, solid(RED)));
    await writeFile(join(root, 'Dog', '1.jpg'), jpg(28, 28, solid(BLUE)));
    await writeFile(join(root, 'Dog', 'notes.txt'), 'taken in 2024');
    await writeFile(join(root, 'Dog', '.DS_Store'), '');
    await writeFile(join(root, 'README'), 'hello');
    const out = join(root, '..', `${root.split('/').at(-1)}-shard`);
    const summary = await importShard(out, await readImageFolder(root, 'what is this ?', DEFAULT_LIMITS), options());
    assert.deepEqual(
      summary.types.map((t) => [t.type, t.questions, t.candidates]),
      [['custom.what-is-this', 3, 2]],
    );
    assert.deepEqual(summary.ignoredFiles.map((f) => f.where.replace(root, '')).sort(), ['/Dog/notes.txt', '/README']);
    const shard = await readShard(out);
    const set = shard.sets.get('emoji')!;
    assert.deepEqual(set.classNames, ['dog', 'cat']); // class folders sorted as named, then lower-cased
    assert.deepEqual([...set.labels], [0, 1, 1]); // images in path order: Dog/1.jpg, cat/1.png, cat/2.PNG
    assert.deepEqual(
      shard.questions.map((q) => [q.answer, q.label]),
      [
        ['dog', 0],
        ['cat', 1],
        ['cat', 1],
      ],
    );
  });

  test('a class name outside the vocabulary and an oversized folder are one-line errors', async () => {
    const root = await tmp();
    await mkdir(join(root, 'zebra'));
    await writeFile(join(root, 'zebra', '1.png'), png(8, 8, solid(RED)));
    await assert.rejects(
      async () =>
        importShard(join(root, 'out'), await readImageFolder(root, 'what is this ?', DEFAULT_LIMITS), options()),
      /zebra\/1\.png: answer 'zebra' is not in the model's vocabulary/,
    );
    await writeFile(join(root, 'zebra', '2.png'), png(8, 8, solid(RED)));
    await assert.rejects(
      readImageFolder(root, 'what is this ?', { ...DEFAULT_LIMITS, maxImages: 1 }),
      /more than --max-images 1 images; split the folder/,
    );
  });
});

describe('fednano shard: writing', () => {
  test('an existing shard is kept unless replace; replace swaps it whole; other folders are never replaced', async () => {
    const { dir, file } = await llavaFixture();
    const out = join(dir, 'shard');
    await importShard(out, await llava(file), options());
    await assert.rejects(
      async () => importShard(out, await llava(file), options()),
      /shard already exists; pass --force/,
    );

    // A failure with replace leaves the old shard as it was, and no partial folder beside it.
    const before = await readFile(join(out, 'emoji.pixels'));
    await writeFile(join(dir, 'img', 'blue.png'), 'broken');
    await assert.rejects(async () => importShard(out, await llava(file), { ...options(), replace: true }), /not a PNG/);
    assert.deepEqual(await readFile(join(out, 'emoji.pixels')), before);
    await writeFile(join(dir, 'img', 'blue.png'), png(10, 10, solid(RED)));
    await importShard(out, await llava(file), { ...options(), replace: true });
    assert.notDeepEqual(await readFile(join(out, 'emoji.pixels')), before); // blue.png is red now
    assert.deepEqual((await readdir(dir)).sort(), ['img', 'questions.jsonl', 'shard']);

    await assert.rejects(
      async () => importShard(join(dir, 'img'), await llava(file), { ...options(), replace: true }),
      /img exists and is not a shard folder; refusing to replace it/,
    );
  });

  test('readShard refuses a custom type it has no answer set for, or an answer outside it', async () => {
    const { dir, file } = await llavaFixture();
    const out = join(dir, 'shard');
    await importShard(out, await llava(file), options());
    const index = JSON.parse(await readFile(join(out, 'shard.json'), 'utf8'));
    index.questionTypes[0].answers = ['green'];
    await writeFile(join(out, 'shard.json'), JSON.stringify(index));
    await assert.rejects(
      readShard(out),
      (e) => e instanceof ShardError && /answer 'red' is not one of type/.test(e.message),
    );
    delete index.questionTypes;
    await writeFile(join(out, 'shard.json'), JSON.stringify(index));
    await assert.rejects(readShard(out), /question type 'custom\.what-colour-is-this' is neither built in nor/);
  });
});

describe('image files to the model input', () => {
  const wide = { width: 4, height: 2, data: new Uint8Array(4 * 8).fill(0) }; // opaque black 4x2 ...
  for (let p = 0; p < 8; p++) wide.data[4 * p + 3] = 255;
  const column = (rgb: Uint8Array, x: number) => Array.from({ length: IMAGE_SIZE }, (_, y) => rgb[y * IMAGE_SIZE + x]);
  const row = (rgb: Uint8Array, y: number) => [...rgb.subarray(y * IMAGE_SIZE, (y + 1) * IMAGE_SIZE)];

  test('fit: pad puts white borders above and below a wide image, crop and stretch fill the square', () => {
    const fits: Record<Fit, Uint8Array> = {
      pad: toModelRgb(wide, 'pad'),
      crop: toModelRgb(wide, 'crop'),
      stretch: toModelRgb(wide, 'stretch'),
    };
    assert.ok(row(fits.pad, 0).every((v) => v === 255) && row(fits.pad, 27).every((v) => v === 255));
    assert.ok(row(fits.pad, 14).every((v) => v === 0));
    assert.ok(fits.crop.every((v) => v === 0) && fits.stretch.every((v) => v === 0));
    assert.ok(column(fits.pad, 0).some((v) => v === 0));
  });

  test('transparent pixels are flattened on white, as for the emoji icons in pretraining', () => {
    const clear = decodeImage(new Uint8Array(png(8, 8, solid([0, 0, 0, 0]))));
    assert.ok(toModelRgb(clear).every((v) => v === 255));
    const half = decodeImage(new Uint8Array(png(8, 8, solid([0, 0, 0, 128]))));
    assert.ok(toModelRgb(half).every((v) => v === 127));
  });
});
