//! A try-confirm-cancel step: `hold_seat` holds seats on a flight (try), the saga's later
//! steps run, and then the host either calls its confirm, which turns the hold into a
//! booking, or its compensation, which releases the hold (cancel). `flight_status` reads
//! a flight's counts.
//!
//! Every call is keyed by a marker in `kv` for this saga step, so a call the host repeats
//! (a retry, a recovery after a crash) finds its work done and changes nothing.

use rte_plugin_sdk::{Step, StepContext, StepError, StepInfo, export_steps, kv};

export_steps!(HoldSeat, FlightStatus);

/// Seats on a flight when the input gives no `capacity`.
const DEFAULT_CAPACITY: i64 = 180;

fn held_key(flight: &str) -> String {
    format!("flight/{flight}/held")
}

fn booked_key(flight: &str) -> String {
    format!("flight/{flight}/booked")
}

/// The seats this saga step holds (try done, not yet confirmed or released).
fn hold_marker(ctx: &StepContext) -> String {
    format!("hold/{}/{}", ctx.tx_id(), ctx.step_index())
}

fn count(key: &str) -> Result<i64, StepError> {
    Ok(kv::get_json::<i64>(key)?.unwrap_or(0))
}

/// `hold_seat`: input `flight`, `seats` (default 1), `capacity` (default 180).
#[derive(Default)]
pub struct HoldSeat;

impl Step for HoldSeat {
    fn info() -> StepInfo {
        StepInfo::new("hold_seat")
            .service("flights")
            .compensation(true)
            .confirm(true)
            .description("hold seats on a flight; confirm books them, compensation releases them")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let flight: String = ctx.input_as("flight")?;
        let seats = ctx.input_as::<Option<i64>>("seats")?.unwrap_or(1);
        if seats < 1 {
            return Err(StepError::permanent("seats must be at least 1"));
        }
        let capacity = ctx
            .input_as::<Option<i64>>("capacity")?
            .unwrap_or(DEFAULT_CAPACITY);
        let marker = hold_marker(ctx);
        if kv::get(&marker)?.is_none() {
            let (held, booked) = (count(&held_key(&flight))?, count(&booked_key(&flight))?);
            if held + booked + seats > capacity {
                return Err(StepError::permanent(format!(
                    "flight {flight} is full: {booked} booked and {held} held of {capacity}"
                )));
            }
            kv::set_json(&held_key(&flight), &(held + seats))?;
            kv::set_json(&marker, &seats)?;
        }
        ctx.set_output("seats_held", seats)
    }

    /// Cancel: release the hold, if this saga step still has one.
    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let marker = hold_marker(ctx);
        let Some(seats) = kv::get_json::<i64>(&marker)? else {
            return Ok(());
        };
        let flight: String = ctx.input_as("flight")?;
        let held = count(&held_key(&flight))?;
        kv::set_json(&held_key(&flight), &(held - seats).max(0))?;
        kv::delete(&marker)
    }

    /// Confirm: the held seats become booked.
    fn confirm(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let marker = hold_marker(ctx);
        let Some(seats) = kv::get_json::<i64>(&marker)? else {
            return Ok(());
        };
        let flight: String = ctx.input_as("flight")?;
        let held = count(&held_key(&flight))?;
        let booked = count(&booked_key(&flight))?;
        kv::set_json(&held_key(&flight), &(held - seats).max(0))?;
        kv::set_json(&booked_key(&flight), &(booked + seats))?;
        kv::delete(&marker)
    }
}

/// `flight_status`: outputs `held` and `booked` for the input `flight`.
#[derive(Default)]
pub struct FlightStatus;

impl Step for FlightStatus {
    fn info() -> StepInfo {
        StepInfo::new("flight_status")
            .service("flights")
            .description("read a flight's held and booked seats")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let flight: String = ctx.input_as("flight")?;
        ctx.set_output("held", count(&held_key(&flight))?)?;
        ctx.set_output("booked", count(&booked_key(&flight))?)
    }
}
