#!/usr/bin/env node
// Runs the MicroPython rp2 port (EMU_PICO image) in rp2040js 1.4.1: persistent flash file, UARTs
// bridged to TCP, the REPL on USB CDC, optional script execution through the raw REPL.
// Usage and design: README.md in this directory.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createBoardModel as createDefaultModel } from './board_model.mjs';
import { PicoMachine } from './pico_machine.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const SHARED = path.resolve(REPO, '..', 'shared', 'rp2040');

const USAGE = `usage: node tools/emu/emu_pico.mjs [options]
  --firmware PATH     raw flash image from offset 0 (default $EMU_PICO_FIRMWARE or ../shared/rp2040/firmware.bin)
  --bootrom PATH      RP2040 B1 bootrom (default $EMU_PICO_BOOTROM or ../shared/rp2040/bootrom.bin)
  --flash FILE        persistent 2 MiB flash image (created if absent; written through on every erase/program)
  --romfs IMG         write IMG into the ROMFS partition (flash 0x0A0000, <= 512 KiB) before boot
  --uart0 HOST:PORT   bridge UART0 to a TCP listener (port 0 = any); likewise --uart1
  --exec FILE         run FILE through the raw REPL once the REPL is up; its output goes to stdout
  --quit-after-exec   exit when the --exec script has finished (status 0; 1 if it raised)
  --heap BYTES        shrink the GC heap so that gc.mem_free() after boot is about BYTES
  --stdin-repl        forward stdin to the USB CDC REPL
  --model FILE.mjs    board model module exporting createBoardModel(machine) (default board_model.mjs)
  --timeout SECONDS   with --exec: give up (status 2) if the script has not finished by then (wall)
  --console-stderr    the firmware's console (USB CDC output outside --exec) goes to stderr, not stdout
                      (stdout then carries only EMU READY, the --exec output and the board model's lines)
  --verbose           driver and emulator diagnostics on stderr
`;

function fail(msg, code = 2) {
  process.stderr.write(`emu_pico: ${msg}\n`);
  process.exit(code);
}

function parseHostPort(s, name) {
  const m = /^(.*):(\d+)$/.exec(s || '');
  if (!m) fail(`${name}: expected HOST:PORT, got ${s}`);
  return { host: m[1] || '127.0.0.1', port: Number(m[2]) };
}

function log(msg) {
  process.stderr.write(`emu_pico: ${msg}\n`);
}

// ---- UART <-> TCP bridge ---------------------------------------------------------------------

// One listener per UART, one client at a time; it outlives board resets (attach() per machine).
class UartBridge {
  constructor(index) {
    this.index = index;
    this.client = null;
    this.machine = null;
    this.txBuf = [];
  }

  attach(machine) {
    this.machine = machine;
    this.txBuf = [];
    const state = machine.uarts[this.index];
    state.onTx = (byte) => {
      if (this.client) this.txBuf.push(byte);
    };
    state.onDrain = () => {
      if (this.client && this.client.isPaused()) this.client.resume();
    };
    machine.afterSlice(() => this.flush());
  }

  flush() {
    if (this.txBuf.length && this.client) this.client.write(Buffer.from(this.txBuf));
    this.txBuf = [];
  }

  listen(hostPort) {
    this.server = net.createServer((sock) => {
      if (this.client) {
        sock.destroy(); // one client at a time
        return;
      }
      this.client = sock;
      sock.setNoDelay(true);
      sock.on('data', (data) => {
        this.machine.uartReceive(this.index, data);
        if (this.machine.uarts[this.index].rxQueued > 65536) sock.pause();
      });
      const gone = () => {
        if (this.client === sock) this.client = null;
      };
      sock.on('close', gone);
      sock.on('error', gone);
    });
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(hostPort.port, hostPort.host, () => {
        const a = this.server.address();
        resolve(`${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
      });
    });
  }

  /** Send what is still buffered, then close: resolves once the client has it. */
  close() {
    return new Promise((resolve) => {
      this.flush();
      this.server.close();
      if (!this.client) return resolve();
      this.client.end(resolve);
    });
  }
}

// ---- raw REPL on USB CDC ---------------------------------------------------------------------

class ReplRunner {
  constructor(machine, opts) {
    this.machine = machine;
    this.opts = opts;
    this.state = opts.script !== null ? 'boot' : 'passthrough';
    this.text = ''; // recent CDC output while waiting for a prompt
    this.pokes = 0;
    this.pokeTimer = null;
    this.outBuf = [];
    this.errBuf = [];
    this.errSeen = false;
    this.t0 = Date.now();
  }

  // The board reset (machine.reset(), watchdog): a script still running has ended with it.
  onReset(machine) {
    this.machine = machine;
    if (this.opts.verbose) log('board reset');
    if (this.state === 'passthrough') return;
    clearTimeout(this.pokeTimer);
    this.flush();
    if (this.opts.quitAfterExec) exitNow(3);
    this.state = 'passthrough';
  }

  onConnected() {
    if (this.opts.verbose) log(`USB CDC connected after ${this.ms()}`);
    if (this.state === 'boot') {
      this.state = 'prompt';
      this.poke();
    }
  }

  ms() {
    return `${Date.now() - this.t0} ms wall, ${(this.machine.nanos / 1e6).toFixed(1)} ms emulated`;
  }

  // Ctrl-C until the friendly REPL's prompt shows (output before DTR was set is lost, and a
  // main.py may be running), then Ctrl-A for the raw REPL.
  poke() {
    if (this.state !== 'prompt') return;
    if (this.pokes++ > 200) fail('no REPL prompt on USB CDC after 60 s');
    this.machine.cdcSend('\r\x03');
    this.pokeTimer = setTimeout(() => this.poke(), 300);
  }

  onData(buf) {
    if (this.state === 'passthrough') {
      (this.opts.consoleStderr ? process.stderr : process.stdout).write(buf);
      return;
    }
    for (const b of buf) this.onByte(b);
    this.flush();
  }

  onByte(b) {
    switch (this.state) {
      case 'prompt':
      case 'raw':
      case 'ok':
        this.text = (this.text + String.fromCharCode(b)).slice(-64);
        if (this.state === 'prompt' && this.text.endsWith('>>> ')) {
          clearTimeout(this.pokeTimer);
          if (this.opts.verbose) log(`REPL prompt after ${this.ms()}`);
          this.state = 'raw';
          this.text = '';
          this.machine.cdcSend('\x01');
        } else if (this.state === 'raw' && this.text.endsWith('raw REPL; CTRL-B to exit\r\n>')) {
          this.state = 'ok';
          this.text = '';
          this.sendScript();
        } else if (this.state === 'ok' && this.text.endsWith('OK')) {
          this.state = 'out';
        }
        break;
      case 'out':
        if (b === 4) this.state = 'err';
        else this.outBuf.push(b);
        break;
      case 'err':
        if (b === 4) this.state = 'end';
        else {
          this.errBuf.push(b);
          this.errSeen = true;
        }
        break;
      case 'end':
        if (b === 0x3e) this.finished();
        break;
      default:
        this.outBuf.push(b);
    }
  }

  sendScript() {
    if (this.opts.verbose) log(`raw REPL after ${this.ms()}, sending ${this.opts.script.length} B`);
    this.execStartNs = this.machine.nanos;
    this.execStartWall = Date.now();
    // the device only arms its OUT endpoint when its FIFO has room: the host queue paces itself
    this.machine.cdcSend(Buffer.concat([this.opts.script, Buffer.from('\x04')]));
  }

  flush() {
    if (this.outBuf.length) process.stdout.write(Buffer.from(this.outBuf));
    if (this.errBuf.length) process.stderr.write(Buffer.from(this.errBuf));
    this.outBuf = [];
    this.errBuf = [];
  }

  finished() {
    this.flush();
    this.state = 'done';
    if (this.opts.verbose) {
      const emu = ((this.machine.nanos - this.execStartNs) / 1e6).toFixed(1);
      log(`script finished: ${Date.now() - this.execStartWall} ms wall, ${emu} ms emulated`);
    }
    if (this.opts.quitAfterExec) exitNow(this.errSeen ? 1 : 0);
    this.state = 'passthrough';
  }
}

let machineRef = null;
const bridges = []; // UartBridge
let exiting = false;
// Stop the emulator, send what the UARTs still hold to their clients, then exit.
function exitNow(code) {
  if (exiting) return;
  exiting = true;
  if (machineRef) machineRef.stop();
  const closing = bridges.filter(Boolean).map((b) => b.close());
  const timer = setTimeout(() => process.exit(code), 1000);
  Promise.all(closing).then(() => {
    clearTimeout(timer);
    process.exit(code);
  });
}

// ---- main ------------------------------------------------------------------------------------

async function main() {
  let args;
  try {
    args = parseArgs({
      options: {
        firmware: { type: 'string' },
        bootrom: { type: 'string' },
        flash: { type: 'string' },
        romfs: { type: 'string' },
        uart0: { type: 'string' },
        uart1: { type: 'string' },
        exec: { type: 'string' },
        'quit-after-exec': { type: 'boolean', default: false },
        heap: { type: 'string' },
        'stdin-repl': { type: 'boolean', default: false },
        model: { type: 'string' },
        timeout: { type: 'string' },
        verbose: { type: 'boolean', default: false },
        'console-stderr': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (e) {
    fail(`${e.message}\n${USAGE}`);
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return;
  }
  const firmwarePath = args.firmware || process.env.EMU_PICO_FIRMWARE || path.join(SHARED, 'firmware.bin');
  const bootromPath = args.bootrom || process.env.EMU_PICO_BOOTROM || path.join(SHARED, 'bootrom.bin');
  const read = (p, what) => {
    try {
      return fs.readFileSync(p);
    } catch (e) {
      return fail(`${what}: ${e.message}`);
    }
  };
  const firmware = read(firmwarePath, 'firmware');
  const bootrom = read(bootromPath, 'bootrom');
  const romfs = args.romfs ? read(args.romfs, 'romfs') : null;
  const script = args.exec ? read(args.exec, 'exec') : null;
  let heapBytes = null;
  if (args.heap !== undefined) {
    heapBytes = Number(args.heap);
    if (!Number.isInteger(heapBytes) || heapBytes < 8192) fail(`--heap: expected bytes >= 8192, got ${args.heap}`);
  }
  if (args['quit-after-exec'] && !script) fail('--quit-after-exec needs --exec');

  let createModel = createDefaultModel;
  if (args.model) {
    const mod = await import(pathToFileURL(path.resolve(args.model)).href);
    createModel = mod.createBoardModel;
  }

  const repl = new ReplRunner(null, {
    script,
    quitAfterExec: args['quit-after-exec'],
    verbose: args.verbose,
    consoleStderr: args['console-stderr'],
  });
  for (const index of [0, 1]) if (args[`uart${index}`]) bridges[index] = new UartBridge(index);

  // one PicoMachine per power-up; a reset builds the next one from the last one's state
  const boot = (options) => {
    const machine = new PicoMachine(options);
    machineRef = machine;
    machine.onCdcData = (buf) => repl.onData(buf);
    machine.onCdcConnected = () => repl.onConnected();
    machine.onReset = (state) => {
      const next = boot(state);
      repl.onReset(next);
      next.start();
    };
    for (const bridge of bridges) if (bridge) bridge.attach(machine);
    return machine;
  };
  let machine;
  try {
    machine = boot({
      firmware,
      bootrom,
      romfs,
      flashFile: args.flash || null,
      heapBytes,
      model: null,
      modelFactory: createModel,
      verbose: args.verbose,
      log,
    });
  } catch (e) {
    fail(e.message);
  }
  repl.machine = machine;

  const ready = [];
  for (const bridge of bridges) {
    if (!bridge) continue;
    const spec = args[`uart${bridge.index}`];
    try {
      ready.push(`uart${bridge.index}=${await bridge.listen(parseHostPort(spec, `--uart${bridge.index}`))}`);
    } catch (e) {
      fail(`--uart${bridge.index} ${spec}: ${e.message}`);
    }
  }

  process.on('SIGTERM', () => exitNow(0));
  process.on('SIGINT', () => exitNow(0));
  process.stdout.on('error', () => exitNow(0)); // reader went away

  if (args['stdin-repl']) {
    process.stdin.on('data', (d) => machineRef.cdcSend(d));
    if (process.stdin.isTTY) process.stdin.setRawMode(true);
  }
  if (args.timeout && script) {
    setTimeout(() => {
      repl.flush();
      log(`--exec script not finished after ${args.timeout} s`);
      exitNow(2);
    }, Number(args.timeout) * 1000).unref();
  }

  process.stdout.write(`EMU READY${ready.length ? ` ${ready.join(' ')}` : ''}\n`);
  machine.start();
}

main();
