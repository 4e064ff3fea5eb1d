// The emulated Pico: rp2040js 1.4.1 plus the workarounds the EMU_PICO image needs, a persistent
// flash file, a wall-clock-capped run loop, UART byte queues and the board-model hooks.
// See README.md in this directory for why each workaround exists.

import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { BasePeripheral, GPIOPinState, RP2040, USBCDC } from 'rp2040js';

export const FLASH_SIZE = 2 * 1024 * 1024;
export const FIRMWARE_END = 0x0a0000; // firmware region 0..0x9FFFF
export const ROMFS_START = 0x0a0000;
export const ROMFS_SIZE = 512 * 1024;
export const LFS_START = 0x120000;

const RAM_START = 0x20000000;
const RAM_END = 0x20042000;
const NS_PER_CYCLE = 8; // 125 MHz
const BKPT_FLASH_ERASE = 0x51; // our breakpoint numbers, placed at the bootrom's RE / RP entries
const BKPT_FLASH_PROGRAM = 0x52;
const UART_TXINTR = 1 << 5;
const UART_RX_FEED_NS = 20_000; // feed the RX FIFO every 20 us of emulated time ...
const UART_RX_FEED_MAX = 28; // ... at most 28 bytes at a time (the FIFO holds 32)
const UART_RX_FIFO = 32;
// GC heap bookkeeping: 16-byte blocks + 2 ATB bits + 1 FTB bit per block (py/gc.c)
const GC_BYTES_PER_BLOCK_ALL = 16 + 3 / 8;
// What the runtime holds right after boot, seen from a raw-REPL script after gc.collect()
// (measured on EMU_PICO: pool 68,864 B, gc.mem_alloc() 4,160 B): pool = wanted free + this
const GC_BOOT_USED = 4160;

// rp2040js leaves VREG_AND_CHIP_RESET unimplemented: reads return 0xFFFFFFFF, so the bootrom
// sees CHIP_RESET.PSM_RESTART_FLAG (the rescue flag) set and halts. A minimal model: power-on
// reset, flag clear; the registers read back as written.
class VregAndChipReset extends BasePeripheral {
  constructor(rp2040) {
    super(rp2040, 'VREG_AND_CHIP_RESET');
    this.vreg = 0xb1;
    this.bod = 0x91;
    this.chipReset = 1 << 8; // HAD_POR
  }
  readUint32(offset) {
    if (offset === 0x0) return this.vreg;
    if (offset === 0x4) return this.bod;
    if (offset === 0x8) return this.chipReset;
    return 0;
  }
  writeUint32(offset, value) {
    if (offset === 0x0) this.vreg = value & 0x10f3;
    else if (offset === 0x4) this.bod = value & 0xf1;
    else if (offset === 0x8) this.chipReset &= ~(this.rawWriteValue & (1 << 24));
  }
}

class StderrLogger {
  constructor(level) {
    this.level = level; // 0 debug, 1 info, 2 warn, 3 error
  }
  out(lvl, tag, component, message) {
    if (lvl >= this.level) process.stderr.write(`[rp2040js ${tag}] ${component}: ${message}\n`);
  }
  debug(c, m) {
    this.out(0, 'debug', c, m);
  }
  info(c, m) {
    this.out(1, 'info', c, m);
  }
  warn(c, m) {
    this.out(2, 'warn', c, m);
  }
  error(c, m) {
    this.out(3, 'error', c, m); // never throw: the firmware keeps running, as silicon would
  }
}

export class PicoMachine {
  /**
   * opts: firmware (Buffer), bootrom (Buffer), flashFile (path|null), romfs (Buffer|null),
   * heapBytes (number|null), model (BoardModel|null) or modelFactory ((machine) => BoardModel),
   * verbose (bool), log ((msg) => void); after a reset also flashData, flashFd, watchdogState
   * (see resetState()).
   */
  constructor(opts) {
    this.opts = opts;
    this.log = opts.log || ((m) => process.stderr.write(`emu: ${m}\n`));
    this.verbose = !!opts.verbose;
    const mcu = new RP2040();
    this.mcu = mcu;
    mcu.logger = new StderrLogger(this.verbose ? 2 : 3);
    mcu.peripherals[0x40064] = new VregAndChipReset(mcu);
    this.core = mcu.core;
    this.clock = mcu.clock;
    this.listenersAfterSlice = []; // before the model: its attach() may register one
    this.model = opts.model || opts.modelFactory(this);
    this.flashFd = null;
    this.stats = { flashErases: 0, flashPrograms: 0, gcInit: [] };

    mcu.loadBootrom(new Uint32Array(Uint8Array.from(opts.bootrom).buffer));
    this.patchBootromFlashFunctions();
    this.loadFlash(); // after loadBootrom: RP2040.reset() fills the flash with 0xFF
    // The bootrom's own flash boot reads boot2 through the SSI in serial mode, which rp2040js
    // does not emulate (it falls back to USB boot): start at boot2 in XIP flash instead, with
    // the bootrom's reset SP, as the bootrom would after checking boot2's CRC.
    mcu.core.reset();
    mcu.core.PC = 0x10000000;
    mcu.onBreak = (code) => this.onBreakpoint(code);
    this.installHeapHook();
    this.uarts = [0, 1].map((i) => this.setupUart(i));
    this.setupUsb();
    this.setupModelHooks();
    this.setupWatchdog();

    this.stopped = true;
    this.sleepTimer = null;
    this.immediate = null;
    this.idle = false; // the core is waiting; idleWall / idleEmu pin emulated to wall time
    this.idleWall = 0;
    this.idleEmu = 0;
  }

  // ---- flash: file-backed, write-through ----------------------------------------------------

  loadFlash() {
    const { flash } = this.mcu;
    if (this.opts.flashData) {
      // a reset: the flash is what it was, nothing to write
      flash.set(this.opts.flashData.subarray(0, FLASH_SIZE), 0);
      this.flashFd = this.opts.flashFd ?? null;
      return;
    }
    const file = this.opts.flashFile;
    let fresh = true;
    if (file && fs.existsSync(file)) {
      const data = fs.readFileSync(file);
      flash.set(data.subarray(0, FLASH_SIZE), 0);
      fresh = data.length !== FLASH_SIZE;
    }
    // the firmware region always comes from --firmware
    const fw = this.opts.firmware;
    if (fw.length > FIRMWARE_END) throw new Error(`firmware image is ${fw.length} B, over ${FIRMWARE_END} B`);
    flash.fill(0xff, 0, FIRMWARE_END);
    flash.set(fw, 0);
    if (this.opts.romfs) {
      const img = this.opts.romfs;
      if (img.length > ROMFS_SIZE) throw new Error(`ROMFS image is ${img.length} B, over ${ROMFS_SIZE} B`);
      flash.fill(0xff, ROMFS_START, ROMFS_START + ROMFS_SIZE);
      flash.set(img, ROMFS_START);
    }
    if (!file) return;
    this.flashFd = fs.openSync(file, fs.existsSync(file) ? 'r+' : 'w+');
    if (fresh) {
      fs.ftruncateSync(this.flashFd, FLASH_SIZE);
      this.writeThrough(0, FLASH_SIZE);
    } else {
      this.writeThrough(0, FIRMWARE_END);
      if (this.opts.romfs) this.writeThrough(ROMFS_START, ROMFS_SIZE);
    }
  }

  writeThrough(offset, length) {
    if (this.flashFd === null || length <= 0) return;
    let done = 0;
    while (done < length) {
      done += fs.writeSync(this.flashFd, this.mcu.flash, offset + done, length - done, offset + done);
    }
  }

  // Bug 1: the SSI does not emulate erase/program. Put a BKPT at the entry of the bootrom's
  // flash_range_erase ('RE') and flash_range_program ('RP'); the host does the work and returns.
  patchBootromFlashFunctions() {
    const rom = new DataView(this.mcu.bootrom.buffer);
    const table = rom.getUint16(0x14, true);
    const found = {};
    for (let p = table; ; p += 4) {
      const code = rom.getUint16(p, true);
      if (!code) break;
      found[String.fromCharCode(code & 0xff, code >> 8)] = rom.getUint16(p + 2, true) & ~1;
    }
    if (found.RE === undefined || found.RP === undefined) throw new Error('bootrom: no RE/RP entries');
    rom.setUint16(found.RE, 0xbe00 | BKPT_FLASH_ERASE, true);
    rom.setUint16(found.RP, 0xbe00 | BKPT_FLASH_PROGRAM, true);
  }

  onBreakpoint(code) {
    const r = this.core.registers;
    const { flash } = this.mcu;
    if (code === BKPT_FLASH_ERASE) {
      // flash_range_erase(uint32_t addr, size_t count, uint32_t block_size, uint8_t block_cmd)
      const addr = r[0] & 0xffffff;
      const count = Math.min(r[1], FLASH_SIZE - addr);
      flash.fill(0xff, addr, addr + count);
      this.writeThrough(addr, count);
      this.stats.flashErases++;
    } else if (code === BKPT_FLASH_PROGRAM) {
      // flash_range_program(uint32_t addr, const uint8_t *data, size_t count): NOR, bits only clear
      const addr = r[0] & 0xffffff;
      const data = r[1] >>> 0;
      const count = Math.min(r[2], FLASH_SIZE - addr);
      for (let i = 0; i < count; i++) flash[addr + i] &= this.mcu.readUint8(data + i);
      this.writeThrough(addr, count);
      this.stats.flashPrograms++;
    } else {
      this.log(`BKPT #${code} at 0x${((this.core.PC - 2) >>> 0).toString(16)} ignored`);
      return;
    }
    this.core.PC = this.core.LR & ~1; // return to the caller (BX LR)
  }

  // ---- heap: shrink the GC heap at gc_init ----------------------------------------------------

  // gc_init(start, end) is the one call at boot (and at each soft reset) whose first two
  // arguments are RAM addresses more than 128 KiB apart. When --heap is given, its start is moved
  // up so that gc.mem_free() after boot is about heapBytes; the RAM below stays unused.
  installHeapHook() {
    const want = this.opts.heapBytes;
    let gcInitAddr = -1;
    this.core.blTaken = (core) => {
      const r = core.registers;
      const target = r[15];
      if (gcInitAddr >= 0) {
        if (target !== gcInitAddr) return;
      } else {
        // gc_init(&__GcHeapStart, &__GcHeapEnd): both word-aligned, the end no higher than the
        // striped RAM's top (the scratch banks above hold the stacks), 192-256 KiB apart
        const len = r[1] - r[0];
        if (r[0] < RAM_START || r[1] > 0x20040000 || (r[0] | r[1]) & 3 || len < 0x30000 || len > 0x40000) {
          return;
        }
        gcInitAddr = target;
      }
      const start = r[0];
      const end = r[1];
      let newStart = start;
      if (want) {
        const pool = want + GC_BOOT_USED;
        const len = Math.ceil((pool / 16) * GC_BYTES_PER_BLOCK_ALL) + 64;
        newStart = Math.max(start, (end - len) & ~0xf);
        r[0] = newStart;
      }
      this.stats.gcInit.push({ start, end, newStart });
      if (this.verbose) {
        const hex = (v) => `0x${v.toString(16)}`;
        this.log(`gc_init(${hex(start)}, ${hex(end)}) at ${hex(target)}: heap ${hex(newStart)}..${hex(end)}`);
      }
    };
  }

  // ---- UARTs ----------------------------------------------------------------------------------

  setupUart(index) {
    const uart = this.mcu.uart[index];
    const state = {
      index,
      uart,
      rxQueue: [], // arrays of bytes (Buffers), consumed from the front
      rxOffset: 0,
      rxQueued: 0,
      onTx: null, // (byte) => void, set by the bridge
      feeder: null,
    };
    // Bug 2: TXINTR is raised permanently in rp2040js (TX FIFO always empty) and MicroPython
    // keeps TXIM set, so the UART handler never returns. Make TX edge-like: raise it once per
    // byte written to UARTDR; the firmware clears it through UARTICR; IRQ = raw AND mask.
    uart.checkInterrupts = function checkInterrupts() {
      this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask));
    };
    const origWrite = uart.writeUint32.bind(uart);
    uart.writeUint32 = (offset, value) => {
      if (offset === 0) {
        if (state.onTx) state.onTx(value & 0xff);
        uart.interruptStatus |= UART_TXINTR;
        uart.checkInterrupts();
        return;
      }
      origWrite(offset, value);
    };
    // RX: an emulated-time alarm moves queued host bytes into the 32-entry FIFO.
    state.feeder = this.clock.createAlarm(() => {
      // Bug 4: `scheduled` stays true after an alarm fired; clear it or it is never re-armed.
      state.feeder.scheduled = false;
      this.feedUart(state);
    });
    return state;
  }

  feedUart(state) {
    const { uart } = state;
    if (uart.enabled && uart.rxEnabled) {
      let room = Math.min(UART_RX_FEED_MAX, UART_RX_FIFO - uart.rxFIFO.itemCount);
      while (room > 0 && state.rxQueued > 0) {
        const chunk = state.rxQueue[0];
        uart.feedByte(chunk[state.rxOffset++]);
        state.rxQueued--;
        room--;
        if (state.rxOffset >= chunk.length) {
          state.rxQueue.shift();
          state.rxOffset = 0;
        }
      }
    }
    if (state.rxQueued > 0) state.feeder.schedule(UART_RX_FEED_NS);
    if (state.onDrain && state.rxQueued < 16384) state.onDrain();
  }

  /** Queue bytes from the host for UART `index`'s RX line. */
  uartReceive(index, bytes) {
    const state = this.uarts[index];
    if (!bytes.length) return;
    state.rxQueue.push(bytes);
    state.rxQueued += bytes.length;
    if (!state.feeder.scheduled) state.feeder.schedule(UART_RX_FEED_NS);
    this.wake();
  }

  // ---- USB CDC --------------------------------------------------------------------------------

  setupUsb() {
    const usb = this.mcu.usbCtrl;
    const cdc = new USBCDC(usb);
    this.cdc = cdc;
    this.cdcIn = []; // host -> device queue (Buffers)
    this.cdcInOffset = 0;
    this.cdcInQueued = 0;
    this.cdcPendingRead = null; // {endpoint, size}: an OUT transfer the device armed, held
    this.onCdcData = null; // (Uint8Array) => void : device -> host
    this.onCdcConnected = null;
    // rp2040js's host waits 10 ms (emulated) after the controller is enabled before the bus reset
    // that starts enumeration; the CDC only carries output once the host set DTR, and what the
    // firmware prints before is dropped (as on a board). Reset after 100 us to lose less of boot.
    usb.onUSBEnabled = () => usb.resetAlarm.schedule(100_000);
    cdc.onSerialData = (buf) => this.onCdcData && this.onCdcData(buf);
    cdc.onDeviceConnected = () => this.onCdcConnected && this.onCdcConnected();
    // Bug 3: rp2040js completes an armed OUT transfer at once with 0 bytes when the host has
    // nothing; TinyUSB re-arms and the core never sleeps (~36,000 IRQ/s). Hold the transfer until
    // host data exists, as a NAK would. Since the device only arms when its FIFO has room, this
    // also paces the host: the 512 B FIFO never overflows.
    usb.onEndpointRead = (endpoint, size) => {
      // (other OUT endpoints, EP0 included, are never completed: as in rp2040js's USBCDC)
      if (endpoint === cdc.outEndpoint) {
        this.cdcPendingRead = { endpoint, size };
        this.completeCdcRead();
      }
    };
  }

  completeCdcRead() {
    const pending = this.cdcPendingRead;
    if (!pending || this.cdcInQueued === 0) return;
    this.cdcPendingRead = null;
    const n = Math.min(pending.size, this.cdcInQueued);
    const out = new Uint8Array(n);
    let i = 0;
    while (i < n) {
      const chunk = this.cdcIn[0];
      const take = Math.min(n - i, chunk.length - this.cdcInOffset);
      out.set(chunk.subarray(this.cdcInOffset, this.cdcInOffset + take), i);
      i += take;
      this.cdcInOffset += take;
      if (this.cdcInOffset >= chunk.length) {
        this.cdcIn.shift();
        this.cdcInOffset = 0;
      }
    }
    this.cdcInQueued -= n;
    this.mcu.usbCtrl.endpointReadDone(pending.endpoint, out);
  }

  /** Send bytes from the host to the device's CDC (REPL input). */
  cdcSend(bytes) {
    if (typeof bytes === 'string') bytes = Buffer.from(bytes, 'latin1');
    if (!bytes.length) return;
    this.cdcIn.push(bytes);
    this.cdcInQueued += bytes.length;
    this.completeCdcRead();
    this.wake();
  }

  get cdcBacklog() {
    return this.cdcInQueued;
  }

  // ---- GPIO / ADC hooks -----------------------------------------------------------------------

  setupModelHooks() {
    const { mcu, model } = this;
    model.attach(this);
    const adc = mcu.adc;
    // Workaround 9: rp2040js's ADC raises DREQ_ADC while FCS.DREQ_EN is set and never lowers it
    // when the firmware clears DREQ_EN (or FCS) with results in the FIFO: the next DMA capture
    // starts with a stale request and copies an empty FIFO (zeros). After an FCS write the line
    // follows the hardware rule: DREQ_EN and FIFO level >= THRESH.
    const adcWrite = adc.writeUint32.bind(adc);
    adc.writeUint32 = (offset, value) => {
      adcWrite(offset, value);
      if (offset === 0x08) {
        const thresh = (adc.fcs >>> 24) & 0xf;
        if (adc.fcs & (1 << 3) && adc.fifo.itemCount >= thresh) mcu.dma.setDREQ(adc.dreq);
        else mcu.dma.clearDREQ(adc.dreq);
      }
    };
    const defaultRead = adc.onADCRead;
    adc.onADCRead = (channel) => {
      const v = model.onAdcConversion(channel, this.clock.nanos);
      adc.channelValues[channel] = Math.max(0, Math.min(4095, v | 0));
      defaultRead(channel);
    };
    mcu.gpio.forEach((pin, index) => {
      pin.addListener((state) => {
        const level = state === GPIOPinState.High ? 1 : state === GPIOPinState.Low ? 0 : null;
        model.onGpioOutput(index, level, this.clock.nanos);
      });
    });
  }

  setGpioInput(pin, level) {
    this.mcu.gpio[pin].setInputValue(!!level);
    this.wake();
  }

  /** The level a pin drives now (1/0), or null when it is not an output. */
  gpioLevel(pin) {
    const v = this.mcu.gpio[pin].value;
    return v === GPIOPinState.High ? 1 : v === GPIOPinState.Low ? 0 : null;
  }

  // ---- reset ---------------------------------------------------------------------------------

  // rp2040js has no reset: a watchdog trigger (machine.reset(), a watchdog timeout) only calls
  // onWatchdogTrigger. The machine stops at the end of the slice and onReset(state) is called;
  // the owner builds a new PicoMachine from `state` (flash as it is, watchdog reason and scratch
  // registers, which survive a watchdog reset on the chip; RAM does not).
  setupWatchdog() {
    const wd = this.mcu.peripherals[0x40058];
    this.watchdog = wd;
    if (this.opts.watchdogState) {
      wd.reason = this.opts.watchdogState.reason;
      wd.scratchData.set(this.opts.watchdogState.scratch);
    }
    this.resetPending = false;
    this.onReset = null;
    wd.onWatchdogTrigger = () => {
      this.resetPending = true;
    };
  }

  /** Options for a PicoMachine that continues after a reset of this one. */
  resetState() {
    return {
      ...this.opts,
      romfs: null,
      model: this.model, // the world outside the board stays as it is
      flashData: this.mcu.flash.subarray(0, FLASH_SIZE),
      flashFd: this.flashFd,
      watchdogState: { reason: this.watchdog.reason, scratch: Uint32Array.from(this.watchdog.scratchData) },
    };
  }

  // ---- run loop -------------------------------------------------------------------------------

  /** Emulated nanoseconds since start. */
  get nanos() {
    return this.clock.nanos;
  }

  start() {
    this.stopped = false;
    this.idle = false;
    this.schedule(0);
  }

  stop() {
    this.stopped = true;
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    if (this.immediate) clearImmediate(this.immediate);
    this.sleepTimer = this.immediate = null;
  }

  /** Host input arrived: if the loop sleeps on the wall clock, run it now. */
  wake() {
    if (this.stopped || !this.sleepTimer) return;
    clearTimeout(this.sleepTimer);
    this.sleepTimer = null;
    this.schedule(0);
  }

  schedule(ms) {
    if (this.sleepTimer || this.immediate) return;
    if (ms >= 1) {
      this.sleepTimer = setTimeout(() => {
        this.sleepTimer = null;
        this.runSlice();
      }, ms);
    } else {
      this.immediate = setImmediate(() => {
        this.immediate = null;
        this.runSlice();
      });
    }
  }

  // Execute instructions for up to ~10 ms of wall time, then yield to the event loop (sockets,
  // signals). While the core sleeps (WFI/WFE) rp2040js would jump straight to the next alarm;
  // here a sleep lasts at least as long on the wall clock: when the core starts to wait, emulated
  // "now" is pinned to wall "now", and the wait may only advance emulated time as far as the wall
  // clock has advanced since. If the next alarm lies further, the host sleeps. Busy stretches
  // still run slower than real time (about 2.7x) and are never made up for, so a firmware timeout
  // never expires before a real-time peer had that long to answer.
  runSlice() {
    if (this.stopped) return;
    const { core, clock } = this;
    const sliceEnd = performance.now() + 10;
    let sleepMs = -1;
    if (!core.waiting) this.idle = false;
    outer: for (;;) {
      for (let i = 0; i < 4000; i++) {
        if (core.waiting) {
          const now = performance.now();
          if (!this.idle) {
            this.idle = true;
            this.idleWall = now;
            this.idleEmu = clock.nanos;
          }
          const limit = this.idleEmu + (now - this.idleWall) * 1e6;
          const next = clock.nextAlarm ? clock.nextAlarm.nanos : Infinity;
          const target = Math.min(next, limit);
          if (target > clock.nanos) clock.tick(target - clock.nanos);
          if (core.waiting) {
            sleepMs = next === Infinity ? 5 : Math.min(5, (next - limit) / 1e6);
            break outer;
          }
          this.idle = false;
          continue;
        }
        clock.tick(core.executeInstruction() * NS_PER_CYCLE);
        if (this.resetPending) break outer;
      }
      if (performance.now() >= sliceEnd) break;
    }
    for (const fn of this.listenersAfterSlice) fn();
    if (this.resetPending && !this.stopped) {
      this.stop();
      if (this.onReset) this.onReset(this.resetState());
      return;
    }
    if (this.stopped) return;
    this.schedule(sleepMs < 0 ? 0 : sleepMs);
  }

  /** Called after each slice (flush buffered output). */
  afterSlice(fn) {
    this.listenersAfterSlice.push(fn);
  }
}
