# Raspberry Pi Pico W (RP2040 + CYW43439 Wi-Fi), one Type 2 socket; imported as `board`.
# Wiring, the reference pilot/PP circuit and the numbers below: docs/BOARDS.md.
#
# GP23, GP24, GP25 and GP29 belong to the CYW43 Wi-Fi chip on the Pico W (GP29 also reads
# VSYS/3), which leaves three ADC inputs, GP26-28: pilot and PP sense use two of them.
from hal.mcu_board import McuBoard

NAME = "pico_w"

PINS = {
    "pilot_pwm": 16,  # PWM slice 0 A, 1 kHz into the +-12 V pilot generator
    "pilot_adc": 26,  # ADC0: pilot sense divider
    "pp_adc": 27,  # ADC1: PP node under the pull-up
    "relay": 15,  # contactor driver (active high, pull-down on the driver input)
    "relay_fb": 14,  # contactor auxiliary contact (weld check), high = closed
    "rcd_fault": 13,  # RCD module fault output, high = tripped
    "rcd_test": 12,  # RCD module test winding driver
    "lock_a": 10,  # lock motor H-bridge: A high = lock
    "lock_b": 11,  # B high = unlock
    "lock_fb": 9,  # lock position switch, high = locked
    "uart": 0,  # energy meter: UART0 + RS485 transceiver
    "uart_tx": 0,
    "uart_rx": 1,
    "rs485_de": 2,  # DE and /RE tied together
    "s0": 3,  # S0 pulse input (meter "s0" instead of Modbus)
    "spi": 0,  # MFRC522 on SPI0
    "spi_sck": 18,
    "spi_mosi": 19,
    "spi_miso": 20,
    "rfid_cs": 17,
    "rfid_rst": 21,
    "led": "LED",  # the on-board LED, driven through the CYW43
    "temp_adc": None,  # no connector temperature sensor (ADC2 / GP28 is free for one)
}
CAPS = {"connectors": 1, "fixed_cable": False, "meter": "sdm", "meter_model": "SDM630"}

# ADC -> pilot volts of the reference divider (docs/BOARDS.md): v_adc = 1.25 V + v_pilot / 12,
# so -12..+12 V lands on 0.25..2.25 V. The RP2040 ADC is ratiometric to ADC_VREF = 3.3 V:
# 1 count of read_u16() = 3300 / 65535 mV at the pin.
ADC_FULL_MV = 3300
PILOT_MV_PER_COUNT = 12 * ADC_FULL_MV / 65535  # 0.6043 mV of pilot per count
PILOT_OFFSET_MV = -15000  # pilot voltage at count 0 (12 x -1.25 V)
PP_PULLUP_OHMS = 1000  # PP pull-up to 3.3 V (the ADC reference: ratiometric)
PP_VREF_MV = 3300
ADC_ATTEN = None  # the rp2 ADC has no attenuator


class Board(McuBoard):
    name = NAME
    pins = PINS
    caps = CAPS
    vendor = "MicroEVSE"
    model = "PICOW-AC1"
    adc_full_mv = ADC_FULL_MV
    pilot_mv_per_count = PILOT_MV_PER_COUNT
    pilot_offset_mv = PILOT_OFFSET_MV
    pp_pullup_ohms = PP_PULLUP_OHMS
    pp_vref_mv = PP_VREF_MV
    adc_atten = ADC_ATTEN
    pilot_dma = True  # ADC FIFO + rp2.DMA at 250 kS/s (hal.pilot_rp2)
    hard_irq = True  # rp2: the S0 counter may use a hard IRQ
