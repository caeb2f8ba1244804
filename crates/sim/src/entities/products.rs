//! Products: the v2 and v1 views.

use super::views::V2Opts;
use super::views::{CustomFieldsV1, CustomFieldsV2, Ref, UserRef, num, t1, t2, user_ref};
use crate::model::{Db, FieldEntity, Product};
use serde::Serialize;

#[derive(Serialize)]
pub struct ProductV2<'a> {
    id: u64,
    name: &'a str,
    code: &'a str,
    description: Option<&'a str>,
    unit: &'a str,
    #[serde(serialize_with = "num")]
    tax: f64,
    category: Option<&'a str>,
    is_linkable: bool,
    is_deleted: bool,
    visible_to: u8,
    owner_id: u64,
    add_time: String,
    update_time: String,
    billing_frequency: &'static str,
    billing_frequency_cycles: Option<u32>,
    prices: Vec<PriceV2<'a>>,
    custom_fields: CustomFieldsV2<'a>,
}

#[derive(Serialize)]
struct PriceV2<'a> {
    product_id: u64,
    #[serde(serialize_with = "num")]
    price: f64,
    currency: &'a str,
    #[serde(serialize_with = "num")]
    cost: f64,
    #[serde(serialize_with = "num")]
    direct_cost: f64,
    notes: &'static str,
}

pub fn product_v2<'a>(db: &'a Db, p: &'a Product, o: &'a V2Opts) -> ProductV2<'a> {
    ProductV2 {
        id: p.id,
        name: &p.name,
        code: &p.code,
        description: p.description.as_deref(),
        unit: &p.unit,
        tax: p.tax,
        category: p.category.as_deref(),
        is_linkable: p.is_linkable,
        is_deleted: p.deleted_time.is_some(),
        visible_to: p.visible_to,
        owner_id: p.owner_id,
        add_time: t2(p.add_time),
        update_time: t2(p.update_time),
        billing_frequency: p.billing_frequency,
        billing_frequency_cycles: p.billing_frequency_cycles,
        prices: p
            .prices
            .iter()
            .map(|pr| PriceV2 {
                product_id: p.id,
                price: pr.price,
                currency: &pr.currency,
                cost: pr.cost,
                direct_cost: pr.direct_cost,
                notes: "",
            })
            .collect(),
        custom_fields: CustomFieldsV2 {
            db,
            entity: FieldEntity::Product,
            id: p.id,
            cf: &p.cf,
            opts: o,
        },
    }
}

/// The v1 product: in `/recents` its owner is an id and `visible_to` a number, in the
/// deprecated list the owner is an object and `visible_to` a string.
#[derive(Serialize)]
pub struct ProductV1<'a> {
    id: u64,
    name: &'a str,
    code: &'a str,
    description: Option<&'a str>,
    unit: &'a str,
    #[serde(serialize_with = "num")]
    tax: f64,
    category: Option<&'a str>,
    active_flag: bool,
    selectable: bool,
    visible_to: VisibleTo,
    owner_id: UserRef<'a>,
    add_time: String,
    update_time: String,
    billing_frequency: &'static str,
    billing_frequency_cycles: Option<u32>,
    prices: Vec<PriceV1<'a>>,
    #[serde(flatten)]
    custom_fields: CustomFieldsV1<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum VisibleTo {
    Int(u8),
    Str(String),
}

#[derive(Serialize)]
struct PriceV1<'a> {
    id: u64,
    product_id: u64,
    #[serde(serialize_with = "num")]
    price: f64,
    currency: &'a str,
    #[serde(serialize_with = "num")]
    cost: f64,
    overhead_cost: (),
}

pub fn product_v1<'a>(db: &'a Db, p: &'a Product, flat: bool) -> ProductV1<'a> {
    ProductV1 {
        id: p.id,
        name: &p.name,
        code: &p.code,
        description: p.description.as_deref(),
        unit: &p.unit,
        tax: p.tax,
        category: p.category.as_deref(),
        active_flag: p.deleted_time.is_none(),
        selectable: p.is_linkable,
        visible_to: if flat {
            VisibleTo::Int(p.visible_to)
        } else {
            VisibleTo::Str(p.visible_to.to_string())
        },
        owner_id: user_ref(db, p.owner_id, if flat { Ref::Flat } else { Ref::Obj }),
        add_time: t1(p.add_time),
        update_time: t1(p.update_time),
        billing_frequency: p.billing_frequency,
        billing_frequency_cycles: p.billing_frequency_cycles,
        prices: p
            .prices
            .iter()
            .enumerate()
            .map(|(k, pr)| PriceV1 {
                id: p.id * 10 + k as u64,
                product_id: p.id,
                price: pr.price,
                currency: &pr.currency,
                cost: pr.cost,
                overhead_cost: (),
            })
            .collect(),
        custom_fields: CustomFieldsV1 {
            db,
            entity: FieldEntity::Product,
            id: p.id,
            cf: &p.cf,
        },
    }
}
