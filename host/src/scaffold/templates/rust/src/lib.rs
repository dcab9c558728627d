//! {{name}}: one saga step, `{{step}}`, that reserves `qty` units of `item` from a stock
//! kept in the plugin's kv. Compensation puts them back.

use rte_plugin_sdk::{Step, StepContext, StepError, StepInfo, export_steps, kv, log};

#[derive(Default)]
struct Reserve;

impl Step for Reserve {
    fn info() -> StepInfo {
        StepInfo::new("{{step}}")
            .compensation(true)
            .idempotency(true)
            .description("reserve qty units of item")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let item: String = ctx.input_as("item")?;
        let qty: u64 = ctx.input_as::<Option<u64>>("qty")?.unwrap_or(1);
        let stock_key = format!("stock/{item}");
        // A new item starts with the input's `stock` (default 10).
        let stock: u64 = match kv::get_json(&stock_key)? {
            Some(stock) => stock,
            None => ctx.input_as::<Option<u64>>("stock")?.unwrap_or(10),
        };
        if qty > stock {
            return Err(StepError::permanent(format!("only {stock} {item} left")));
        }
        kv::set_json(&stock_key, &(stock - qty))?;
        // What compensation must undo, written atomically with the step's result.
        kv::set_json(&format!("reserved/{}", ctx.tx_id()), &qty)?;
        log::info(format!("reserved {qty} {item}, {} left", stock - qty));
        ctx.set_output("reserved", qty)?;
        ctx.set_output("remaining", stock - qty)
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let marker = format!("reserved/{}", ctx.tx_id());
        // No marker: execute never took effect, or this compensation already ran.
        let Some(qty) = kv::get_json::<u64>(&marker)? else {
            return Ok(());
        };
        let item: String = ctx.input_as("item")?;
        let stock_key = format!("stock/{item}");
        let stock: u64 = kv::get_json(&stock_key)?.unwrap_or(0);
        kv::set_json(&stock_key, &(stock + qty))?;
        kv::delete(&marker)
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        Some(format!("{{step}}:{}", ctx.tx_id()))
    }
}

export_steps!(Reserve);

#[cfg(test)]
mod tests {
    use rte_plugin_sdk::testing::StepTest;
    use serde_json::json;

    use super::*;

    #[test]
    fn reserves_and_gives_back() {
        let mut test = StepTest::new();
        let outputs = test
            .execute(&Reserve, json!({"item": "apple", "qty": 3}))
            .unwrap();
        assert_eq!(outputs["remaining"], 7);
        assert_eq!(test.kv_get_json::<u64>("stock/apple"), Some(7));

        test.compensate(&Reserve, json!({"item": "apple"})).unwrap();
        assert_eq!(test.kv_get_json::<u64>("stock/apple"), Some(10));
        // A second compensation finds nothing to undo.
        test.compensate(&Reserve, json!({"item": "apple"})).unwrap();
        assert_eq!(test.kv_get_json::<u64>("stock/apple"), Some(10));
    }

    #[test]
    fn too_few_left_is_permanent_and_writes_nothing() {
        let mut test = StepTest::new();
        test.kv_set_json("stock/apple", &2);
        let err = test
            .execute(&Reserve, json!({"item": "apple", "qty": 3}))
            .unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(test.kv_get_json::<u64>("stock/apple"), Some(2));
    }
}
