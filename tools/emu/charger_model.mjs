// The charger around the emulated Pico for tools/emu_sim.py (`tools/sim.py --board emu_pico`):
// the control pilot line with the EV's resistors and diode, the cable's PP resistor, the
// contactor's auxiliary contact, the cable lock's position switch and the RCD module's output,
// wired as boards/emu_pico.py expects. The physical world itself (which EV, which cable, which
// faults) lives in the CPython supervisor; it tells this model over the driver's stdin and hears
// the outputs on the driver's stdout, one line each (emu_pico.mjs --host-io):
//
//   host -> model (stdin):   p EV_OHMS DIODE PP_OHMS    the pilot line and the cable (connector 1):
//                                                       EV_OHMS -1 nothing, 0 short to PE, else R2
//                                                       (|| R3); DIODE 1/0; PP_OHMS 0 = no cable
//                            f BITS                     faults: rcd 1, weld 2, lock 4 (others: UART1)
//   model -> host (stdout):  B N                        machine N (1, 2, ...) powered up (reset)
//                            a US                       a `p` line took effect at emulated us
//                            t US                       emulated time now (after a run slice, at
//                                                       most every 5 ms of wall time)
//                            r LEVEL US                 relay pin (GP15) driven 1/0 at emulated us
//                            l LOCKED US                lock commanded (a pulse on GP10 locks, on
//                                                       GP11 unlocks)
//   Every model line starts with \x1e (RS).
//
// Pilot sense (ADC0, GP26): the generator gives +12 V while the PWM pin (GP16) is high, -12 V
// while low (a pin that does not drive counts as high: the output stage's pull-up), through
// R1 = 1 kOhm into the EV: with the diode the positive half is 0.7 V + 11.3 V * R2 / (R2 + R1)
// and the negative half stays at -12 V; without it the divider works both ways. The sense divider
// of docs/BOARDS.md maps it to v_adc = 1.25 V + v_pilot / 12 on the 3.3 V, 12-bit ADC, plus
// +/- 2 counts of noise. PP (ADC1, GP27): the cable's resistor under a 1 kOhm pull-up to 3.3 V.
import { performance } from 'node:perf_hooks';
import { BoardModel } from './board_model.mjs';

const ADC_FULL_MV = 3300;
const GEN_MV = 12000;
const DIODE_MV = 700;
const R1 = 1000;
const PP_PULLUP = 1000;
const PIN_PWM = 16;
const PIN_RELAY = 15;
const PIN_RELAY_FB = 14;
const PIN_RCD = 13;
const PIN_LOCK_A = 10;
const PIN_LOCK_B = 11;
const PIN_LOCK_FB = 9;
const RCD = 1;
const WELD = 2;
const LOCK = 4;
const RS = '\x1e';

function raw12(adcMv) {
  return Math.max(0, Math.min(4095, Math.round((adcMv * 4095) / ADC_FULL_MV)));
}

export class ChargerModel extends BoardModel {
  constructor(out = (line) => process.stdout.write(line)) {
    super();
    this.out = out;
    this.evOhms = -1;
    this.diode = true;
    this.ppOhms = 0;
    this.faults = 0;
    this.relay = 0; // GP15 as driven
    this.locked = false; // commanded (the last pulse)
    this.lockPos = false; // the position switch
    this.machines = 0;
    this.rng = 0x2545f491;
    this.conversions = 0;
  }

  attach(machine) {
    super.attach(machine);
    this.machines += 1;
    // a new machine (power-up or reset): outputs undriven, the contactor drops, the lock's
    // actuator rests where it is but the command is gone (the supervisor logs the power-on state)
    this.relay = 0;
    this.locked = false;
    if (!(this.faults & LOCK)) this.lockPos = false;
    this.applyInputs();
    this.out(`${RS}B ${this.machines}\n`);
    let last = 0;
    machine.afterSlice(() => {
      const now = performance.now();
      if (now - last < 5) return;
      last = now;
      this.out(`${RS}t ${Math.floor(machine.nanos / 1000)}\n`);
    });
  }

  // ---- host side ----

  /** One line from the host (without its newline). */
  hostLine(line) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'p' && f.length >= 4) {
      this.evOhms = Number(f[1]);
      this.diode = f[2] !== '0';
      this.ppOhms = Number(f[3]);
      if (this.machine) this.out(`${RS}a ${Math.floor(this.machine.nanos / 1000)}\n`);
    } else if (f[0] === 'f' && f.length >= 2) {
      const was = this.faults;
      this.faults = Number(f[1]) | 0;
      if (was & LOCK && !(this.faults & LOCK)) this.lockPos = this.locked; // repaired: catches up
      this.applyInputs();
    }
  }

  applyInputs() {
    const m = this.machine;
    if (!m) return;
    m.setGpioInput(PIN_RELAY_FB, this.relay || this.faults & WELD ? 1 : 0);
    m.setGpioInput(PIN_LOCK_FB, this.lockPos ? 1 : 0);
    m.setGpioInput(PIN_RCD, this.faults & RCD ? 1 : 0);
  }

  // ---- hooks of the driver ----

  noise() {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    return (this.rng % 5) - 2;
  }

  pilotMv(high) {
    const r = this.evOhms;
    if (r < 0) return high ? GEN_MV : -GEN_MV;
    if (r === 0) return 0;
    if (this.diode) return high ? DIODE_MV + ((GEN_MV - DIODE_MV) * r) / (r + R1) : -GEN_MV;
    const v = (GEN_MV * r) / (r + R1);
    return high ? v : -v;
  }

  onAdcConversion(channel, nanos) {
    void nanos;
    this.conversions++;
    if (channel === 0) {
      const level = this.machine.gpioLevel(PIN_PWM);
      return raw12(1250 + this.pilotMv(level !== 0) / 12) + this.noise();
    }
    if (channel === 1) {
      const rc = this.ppOhms;
      return rc > 0 ? raw12((ADC_FULL_MV * rc) / (rc + PP_PULLUP)) : 4095;
    }
    return this.adcValues[channel] ?? 0;
  }

  onGpioOutput(pin, level, nanos) {
    const us = Math.floor(nanos / 1000);
    if (pin === PIN_RELAY) {
      const v = level === 1 ? 1 : 0;
      if (v !== this.relay) {
        this.relay = v;
        this.machine.setGpioInput(PIN_RELAY_FB, v || this.faults & WELD ? 1 : 0);
        this.out(`${RS}r ${v} ${us}\n`);
      }
    } else if ((pin === PIN_LOCK_A || pin === PIN_LOCK_B) && level === 1) {
      const locked = pin === PIN_LOCK_A;
      if (!(this.faults & LOCK)) {
        this.lockPos = locked;
        this.machine.setGpioInput(PIN_LOCK_FB, locked ? 1 : 0);
      }
      if (locked !== this.locked) {
        this.locked = locked;
        this.out(`${RS}l ${locked ? 1 : 0} ${us}\n`);
      }
    }
  }
}

export function createBoardModel() {
  const model = new ChargerModel();
  let pending = '';
  process.stdin.setEncoding('latin1');
  process.stdin.on('data', (chunk) => {
    pending += chunk;
    let i;
    while ((i = pending.indexOf('\n')) >= 0) {
      model.hostLine(pending.slice(0, i));
      pending = pending.slice(i + 1);
    }
    if (model.machine) model.machine.wake();
  });
  // the supervisor is gone (it closed our stdin or died): so is the charger
  process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
  return model;
}
