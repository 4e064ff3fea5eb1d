// Host-side model of what is wired to the emulated Pico's pins.
//
// The driver (pico_machine.mjs) calls these hooks; a charger model (pilot, relay feedback, lock,
// meter) subclasses BoardModel and is loaded with `emu_pico.mjs --model FILE.mjs` (the module
// exports `createBoardModel(machine)`). Nothing here knows about EVs: the default model returns
// constant ADC values and ignores outputs.

export class BoardModel {
  constructor() {
    /** Raw 12-bit ADC values per channel (0-3 = GPIO26-29, 4 = temperature sensor). */
    this.adcValues = [0, 0, 0, 0, 876]; // 876 ~ 0.706 V ~ 27 degC on the temperature channel
    this.machine = null;
  }

  /** Called once, before the firmware starts. `machine` is the PicoMachine. */
  attach(machine) {
    this.machine = machine;
  }

  /**
   * An ADC conversion on `channel` starts now (emulated time `nanos`). Return the raw 12-bit
   * result. A pilot model reads the PWM pin's level here: `this.machine.gpioLevel(pin)`.
   */
  onAdcConversion(channel, nanos) {
    void nanos;
    return this.adcValues[channel] ?? 0;
  }

  /**
   * A GPIO's driven level changed: `level` is 1 or 0 while the pin is an output (SIO, PWM, PIO),
   * null when it stopped driving (input / high impedance). `nanos` = emulated time.
   */
  onGpioOutput(pin, level, nanos) {
    void pin;
    void level;
    void nanos;
  }

  /** Drive an input pin from the host side (a feedback contact, a button). */
  setGpioInput(pin, level) {
    this.machine.setGpioInput(pin, level);
  }
}

export function createBoardModel() {
  return new BoardModel();
}
