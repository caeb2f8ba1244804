//! Products attached to deals: the v2 view.

use super::views::{num, odate, t2};
use crate::model::DealProduct;
use serde::Serialize;

#[derive(Serialize)]
pub struct DealProductV2<'a> {
    id: u64,
    #[serde(serialize_with = "num")]
    sum: f64,
    #[serde(serialize_with = "num")]
    tax: f64,
    deal_id: u64,
    name: &'a str,
    product_id: u64,
    product_variation_id: (),
    order_nr: u32,
    add_time: String,
    update_time: String,
    comments: &'static str,
    currency: &'a str,
    #[serde(serialize_with = "num")]
    discount: f64,
    #[serde(serialize_with = "num")]
    quantity: f64,
    #[serde(serialize_with = "num")]
    item_price: f64,
    tax_method: &'static str,
    discount_type: &'static str,
    is_enabled: bool,
    billing_frequency: &'static str,
    billing_frequency_cycles: (),
    billing_start_date: Option<String>,
}

pub fn deal_product_v2(p: &DealProduct) -> DealProductV2<'_> {
    DealProductV2 {
        id: p.id,
        sum: p.sum(),
        tax: p.tax,
        deal_id: p.deal_id,
        name: &p.name,
        product_id: p.product_id,
        product_variation_id: (),
        order_nr: p.order_nr,
        add_time: t2(p.add_time),
        update_time: t2(p.update_time),
        comments: "",
        currency: &p.currency,
        discount: p.discount,
        quantity: p.quantity,
        item_price: p.item_price,
        tax_method: "inclusive",
        discount_type: "percentage",
        is_enabled: true,
        billing_frequency: p.billing_frequency,
        billing_frequency_cycles: (),
        billing_start_date: odate(p.billing_start_date),
    }
}
