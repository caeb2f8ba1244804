//! Currencies: the v1 view.

use crate::model::Currency;
use serde::Serialize;

#[derive(Serialize)]
pub struct CurrencyV1 {
    id: u64,
    code: &'static str,
    name: &'static str,
    decimal_points: u32,
    symbol: &'static str,
    active_flag: bool,
    is_custom_flag: bool,
}

pub fn currency_v1(c: &Currency) -> CurrencyV1 {
    CurrencyV1 {
        id: c.id,
        code: c.code,
        name: c.name,
        decimal_points: c.decimals,
        symbol: c.symbol,
        active_flag: true,
        is_custom_flag: false,
    }
}
