# The action table: every OCPP action the backend may call on us -> (module, handler function).
# Modules are imported when the action first arrives. An action of OCPP 1.6 missing here is
# answered NotSupported; a name OCPP 1.6 does not know is answered NotImplemented.
ACTIONS = {
    "GetConfiguration": ("cp.h_config", "get_configuration"),
    "ChangeConfiguration": ("cp.h_config", "change_configuration"),
    "Reset": ("cp.h_reset", "reset"),
    "RemoteStartTransaction": ("cp.h_remote", "remote_start"),
    "RemoteStopTransaction": ("cp.h_remote", "remote_stop"),
    "ChangeAvailability": ("cp.h_avail", "change_availability"),
    "UnlockConnector": ("cp.h_unlock", "unlock_connector"),
    "ClearCache": ("cp.h_cache", "clear_cache"),
    "DataTransfer": ("cp.h_data", "data_transfer"),
    "SendLocalList": ("cp.h_locallist", "send_local_list"),
    "GetLocalListVersion": ("cp.h_locallist", "get_local_list_version"),
    "ReserveNow": ("cp.h_reserve", "reserve_now"),
    "CancelReservation": ("cp.h_reserve", "cancel_reservation"),
    "TriggerMessage": ("cp.h_trigger", "trigger_message"),
    "SetChargingProfile": ("cp.h_smart", "set_charging_profile"),
    "ClearChargingProfile": ("cp.h_smart", "clear_charging_profile"),
    "GetCompositeSchedule": ("cp.h_smart", "get_composite_schedule"),
}
