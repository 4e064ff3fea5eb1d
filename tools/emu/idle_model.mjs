// A charger at rest for emu_pico.mjs --model: no EV and no cable. The pilot sense (ADC0, GP26)
// reads +12 V (state A) through the reference divider of boards/emu_pico.py
// (v_adc = 1.25 V + v_pilot / 12 on a 3.3 V ratiometric ADC), the PP node (ADC1, GP27) sits at
// the pull-up (open: no cable). Whatever the PWM does, the values stay the same; the EV model
// replaces this.
import { BoardModel } from './board_model.mjs';

const ADC_FULL_MV = 3300;

function pilotRaw(pilotMv) {
  const adcMv = 1250 + pilotMv / 12;
  return Math.max(0, Math.min(4095, Math.round((adcMv * 4095) / ADC_FULL_MV)));
}

export class IdleModel extends BoardModel {
  constructor() {
    super();
    this.adcValues = [pilotRaw(12000), 4095, 0, 0, 876];
  }
}

export function createBoardModel() {
  return new IdleModel();
}
