# Generic ESP32-WROOM-32E dev kit (no PSRAM), one Type 2 socket; imported as `board`.
# Wiring, the reference pilot/PP circuit and the numbers below: docs/BOARDS.md.
#
# Pins avoid the strapping pins (0, 2 as input, 5, 12, 15), the flash pins (6-11), and ADC2
# (unusable while Wi-Fi runs): pilot and PP sense are on ADC1 (GPIO 36, 39). GPIO 34-39 are
# input only and have no internal pull-ups (feedback and RCD inputs get external ones).
from hal.mcu_board import McuBoard

NAME = "esp32"

PINS = {
    "pilot_pwm": 25,  # 1 kHz PWM into the +-12 V pilot generator
    "pilot_adc": 36,  # ADC1_CH0 (SVP): pilot sense divider
    "pp_adc": 39,  # ADC1_CH3 (SVN): PP node under the pull-up
    "relay": 26,  # contactor driver (active high, pull-down on the driver input)
    "relay_fb": 34,  # contactor auxiliary contact (weld check), high = closed
    "rcd_fault": 35,  # RCD module fault output, high = tripped
    "rcd_test": 27,  # RCD module test winding driver
    "lock_a": 32,  # lock motor H-bridge: A high = lock
    "lock_b": 33,  # B high = unlock
    "lock_fb": 4,  # lock position switch, high = locked
    "uart": 2,  # energy meter: UART2 + RS485 transceiver
    "uart_tx": 17,
    "uart_rx": 16,
    "rs485_de": 22,  # DE and /RE tied together
    "s0": 21,  # S0 pulse input (meter "s0" instead of Modbus)
    "spi": 2,  # MFRC522 on VSPI
    "spi_sck": 18,
    "spi_mosi": 23,
    "spi_miso": 19,
    "rfid_cs": 13,
    "rfid_rst": 14,
    "led": 2,  # the dev kit's blue LED
    "temp_adc": None,  # no temperature sensor
}
CAPS = {"connectors": 1, "fixed_cable": False, "meter": "sdm", "meter_model": "SDM630"}

# ADC -> pilot volts of the reference divider (docs/BOARDS.md): v_adc = 1.25 V + v_pilot / 12,
# so -12..+12 V lands on 0.25..2.25 V, inside the linear range of ATTN_11DB (0.15..2.45 V).
# read_u16() full scale ~3.1 V at 11 dB: 1 count = 3100 / 65535 mV at the pin.
ADC_FULL_MV = 3100
PILOT_MV_PER_COUNT = 12 * ADC_FULL_MV / 65535  # 0.5676 mV of pilot per count
PILOT_OFFSET_MV = -15000  # pilot voltage at count 0 (12 x -1.25 V)
PP_PULLUP_OHMS = 1000  # PP pull-up to 3.3 V
PP_VREF_MV = 3300
ADC_ATTEN = 3  # machine.ADC.ATTN_11DB


class Board(McuBoard):
    name = NAME
    pins = PINS
    caps = CAPS
    vendor = "MicroEVSE"
    model = "ESP32-AC1"
    adc_full_mv = ADC_FULL_MV
    pilot_mv_per_count = PILOT_MV_PER_COUNT
    pilot_offset_mv = PILOT_OFFSET_MV
    pp_pullup_ohms = PP_PULLUP_OHMS
    pp_vref_mv = PP_VREF_MV
    adc_atten = ADC_ATTEN
    hard_irq = False  # ESP32: soft IRQs only
