# The configuration keys of the charge point: one line of TABLE per key, fields separated by
# "|" (cp/config.py explains them):
#   name|type|default|access|profile|check|UI label
# A string constant, not a file: with the app in ROMFS or frozen it stays in flash (no heap,
# found wherever the code is, no path to resolve); cp/config.py slices out one row at a time.
TABLE = """
ChargePointId|str|CP001|RW reboot|Vendor|1..48|ChargePoint ID
CentralSystemURL|str||RW reboot|Vendor|0..256|Backend URL (ws:// or wss://)
SecurityProfile|int|0|RW reboot|Security|0..3|Security profile (0 none, 1 Basic auth, 2 TLS + Basic auth, 3 TLS + client certificate)
AuthorizationKey|str||W secret|Security|16..40|HTTP Basic Authentication password
AuthorizationKeyAsText|bool|false|RW|Vendor||Send the AuthorizationKey as typed (not a hex key's bytes)
HeartbeatInterval|int|300|RW|Core|0..2147483647|Heartbeat interval (s)
WebSocketPingInterval|int|60|RW|Core|0..2147483647|WebSocket ping interval (s, 0 = off)
WebSocketPongTimeout|int|15|RW|Vendor|1..3600|WebSocket pong timeout (s)
MessageTimeout|int|30|RW|Vendor|1..3600|OCPP call timeout (s)
RetryBackOffWaitMinimum|int|3|RW|Vendor|1..3600|Reconnect: first wait (s)
RetryBackOffRandomRange|int|10|RW|Vendor|0..3600|Reconnect: random extra wait (s)
RetryBackOffRepeatTimes|int|5|RW|Vendor|0..20|Reconnect: times the wait doubles
NumberOfConnectors|int|1|R|Core||Number of connectors
GetConfigurationMaxKeys|int|100|R|Core||Maximum keys in one GetConfiguration
SupportedFeatureProfiles|str|Core,LocalAuthListManagement,Reservation,RemoteTrigger,SmartCharging|R|Core||Supported feature profiles
SupportedFeatureProfilesMaxLength|int|6|R|Core||Maximum feature profiles
AuthorizeRemoteTxRequests|bool|false|RW|Core||Authorize remote start requests like a card
AuthorizationCacheEnabled|bool|true|RW|Core||Authorization cache
LocalPreAuthorize|bool|false|RW|Core||Start at once on a valid cached card (no Authorize wait)
LocalAuthorizeOffline|bool|true|RW|Core||Authorize from the cache while offline
AllowOfflineTxForUnknownId|bool|false|RW|Core||Unknown cards may charge while offline
ConnectionTimeOut|int|60|RW|Core|1..3600|Time to plug in after identification (s)
StopTransactionOnInvalidId|bool|true|RW|Core||Stop a transaction the backend does not accept
MaxEnergyOnInvalidId|int|0|RW|Core|0..1000000|Energy allowed before an invalid card stops (Wh)
StopTransactionOnEVSideDisconnect|bool|true|RW|Core||Stop the transaction when the EV is unplugged
UnlockConnectorOnEVSideDisconnect|bool|true|RW|Core||Unlock the socket when the EV is unplugged
MinimumStatusDuration|int|0|RW|Core|0..3600|Minimum status duration before it is reported (s)
ConnectorPhaseRotation|str|0.RST|RW|Core|0..500|Phase rotation per connector
ConnectorPhaseRotationMaxLength|int|9|R|Core||Maximum phase rotation entries
ResetRetries|int|1|RW|Core|0..10|Reset retries
TransactionMessageAttempts|int|3|RW|Core|1..10|Transaction message attempts
TransactionMessageRetryInterval|int|60|RW|Core|1..86400|Transaction message retry interval (s)
MeterValueSampleInterval|int|60|RW|Core|0..86400|Meter value sample interval (s, 0 = off)
MeterValuesSampledData|csl|Energy.Active.Import.Register|RW|Core|$measurand|Sampled measurands
MeterValuesSampledDataMaxLength|int|8|R|Core||Maximum sampled measurands
ClockAlignedDataInterval|int|0|RW|Core|0..86400|Clock-aligned data interval (s, 0 = off)
MeterValuesAlignedData|csl|Energy.Active.Import.Register|RW|Core|$measurand|Clock-aligned measurands
MeterValuesAlignedDataMaxLength|int|8|R|Core||Maximum clock-aligned measurands
StopTxnSampledData|csl||RW|Core|$measurand|Sampled measurands in StopTransaction
StopTxnSampledDataMaxLength|int|8|R|Core||Maximum StopTransaction sampled measurands
StopTxnAlignedData|csl||RW|Core|$measurand|Clock-aligned measurands in StopTransaction
StopTxnAlignedDataMaxLength|int|8|R|Core||Maximum StopTransaction clock-aligned measurands
StopTransactionMaxMeterValues|int|24|R|Core||Meter values kept for StopTransaction
MaxCurrent|int|32|RW|Vendor|6..80|Installation maximum current per connector (A)
ChargingInStateDAllowed|bool|false|RW|Vendor||Charge EVs that need ventilation (state D)
FreeCharging|bool|false|RW|Vendor||Charge without authorization (no transaction)
IntegerBooleans|bool|false|RW|Vendor||Integer values for boolean configuration keys
ReportVendorKeys|bool|true|RW|Vendor||The backend receives all configurable parameters
StatusNotificationOnReconnect|bool|false|RW|Vendor||Send every connector's status after each reconnect
LocalAuthListEnabled|bool|true|RW|LocalAuthListManagement||Local authorization list
LocalAuthListMaxLength|int|10000|R|LocalAuthListManagement||Maximum local list entries
SendLocalListMaxLength|int|64|R|LocalAuthListManagement||Maximum entries in one SendLocalList
ReserveConnectorZeroSupported|bool|true|R|Reservation||Reservations of connector 0
ChargeProfileMaxStackLevel|int|16|R|SmartCharging||Highest charging profile stack level
ChargingScheduleAllowedChargingRateUnit|csl|Current,Power|R|SmartCharging|Current,Power|Charging rate units of charging schedules
ChargingScheduleMaxPeriods|int|48|R|SmartCharging||Maximum periods in a charging schedule
MaxChargingProfilesInstalled|int|32|R|SmartCharging||Maximum charging profiles installed
NominalVoltage|int|230|RW|Vendor|100..400|Nominal phase voltage, for limits in W (V)
SupplyPhases|int|3|RW|Vendor|1..3|Phases wired to the charger, for limits in W
"""
