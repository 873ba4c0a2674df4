// Starts the real `resident serve` on a free loopback port with a synthetic model, for the
// real-client tests. RESIDENT_BINARY names the binary (ctest passes the one it built); the
// default is build/bin/resident of this checkout.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, symlinkSync, rmSync, openSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, homedir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const binary = process.env.RESIDENT_BINARY || resolve(here, '../../build/bin/resident');

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

// The same cache as the C++ integration tests (tests/support/test_env.cc).
export function synthModel(seed = 1) {
  const cache = join(homedir(), '.cache/resident/test-models');
  const path = join(cache, `synth-20M-${seed}.gguf`);
  if (!existsSync(path)) {
    mkdirSync(cache, { recursive: true });
    const mine = `${path}.${process.pid}.tmp`;
    execFileSync(binary, ['synth', mine, '--params', '20M', '--seed', String(seed)]);
    execFileSync('mv', [mine, path]);
  }
  return path;
}

// A synthetic model with a real model's chat template (`resident synth --chat-template NAME`:
// qwen2.5, deepseek-r1...), cached as the C++ integration tests cache theirs.
export function synthTemplateModel(template, seed = 1) {
  const cache = join(homedir(), '.cache/resident/test-models');
  const path = join(cache, `synth-20M-${seed}-${template}.gguf`);
  if (!existsSync(path)) {
    mkdirSync(cache, { recursive: true });
    const mine = `${path}.${process.pid}.tmp`;
    execFileSync(binary, ['synth', mine, '--params', '20M', '--seed', String(seed), '--chat-template', template]);
    execFileSync('mv', [mine, path]);
  }
  return path;
}

// Returns {port, url, stop()}. The models "tiny" and "demo" are the same synthetic file.
// extraEnv: more environment for the server (e.g. RESIDENT_CONTEXT_LENGTH). extraModels: more
// models, {name: seed} or {name: {template, seed}}, each its own synthetic file.
// A tool both clients' tests offer the models (OpenAI's function shape, which Ollama takes too).
export const weather = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['unit'] },
  },
};

export async function startServer(extraEnv = {}, extraModels = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'resident-clients-'));
  const models = join(dir, 'models');
  mkdirSync(models);
  const file = synthModel();
  symlinkSync(file, join(models, 'tiny.gguf'));
  symlinkSync(file, join(models, 'demo.gguf'));
  for (const [name, m] of Object.entries(extraModels)) {
    const file = typeof m === 'object' ? synthTemplateModel(m.template, m.seed ?? 1) : synthModel(m);
    symlinkSync(file, join(models, `${name}.gguf`));
  }
  return startResident(models, dir, { RESIDENT_MODELS: join(dir, 'store'), ...extraEnv }, { removeDir: true });
}

// Starts `resident serve --models-dir MODELS` on a free loopback port, its log in DIR/serve-PORT.log.
// Waits until CHILD answers URL with a 2xx. A minute (a sanitizer build on a busy machine is slow
// to start); a child that exits, or does not answer in time, is an error naming its LOG.
async function answering(child, url, what, log) {
  for (const deadline = Date.now() + 60000; ; ) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    if (child.exitCode !== null) throw new Error(`${what} exited; see ${log}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${what} did not answer in 60 s; see ${log}`);
    }
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

// Returns {port, url, dir, pid, stop()}; stop() removes DIR when opts.removeDir.
export async function startResident(models, dir, env = {}, opts = {}) {
  const port = await freePort();
  const log = openSync(join(dir, `serve-${port}.log`), 'w');
  const child = spawn(binary, ['serve', '--models-dir', models], {
    env: { ...process.env, RESIDENT_HOST: `127.0.0.1:${port}`, RESIDENT_GGUF_DIR: models,
           RESIDENT_OLLAMA_MODELS: '', ...env },
    stdio: ['ignore', log, log],
  });
  const url = `http://127.0.0.1:${port}`;
  await answering(child, url + '/', 'resident serve', `${dir}/serve-${port}.log`);
  return {
    port,
    url,
    dir,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((ok) => child.once('exit', ok));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
        await gone;
        clearTimeout(timer);
      }
      if (opts.removeDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Debian's docker-registry (the reference registry) on a free loopback port, its storage in a
// temporary folder. Returns {host: "127.0.0.1:PORT", stop()}.
export async function startRegistry() {
  const dir = mkdtempSync(join(tmpdir(), 'resident-registry-'));
  const port = await freePort();
  const config = join(dir, 'config.yml');
  writeFileSync(config, `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n` +
    `storage:\n  filesystem:\n    rootdirectory: ${dir}/data\n` +
    `http:\n  addr: 127.0.0.1:${port}\n`);
  const log = openSync(join(dir, 'registry.log'), 'w');
  const child = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', log, log] });
  await answering(child, `http://127.0.0.1:${port}/v2/`, 'docker-registry', `${dir}/registry.log`);
  return {
    host: `127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((ok) => child.once('exit', ok));
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
