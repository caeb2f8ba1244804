//! Product variations: derived from each product and the seed (none to three per product), so
//! products created or deleted through the API keep theirs consistent without stored state.

use crate::envelope;
use crate::model::{Db, Product, purged};
use crate::respond::{Ctx, Resp, err};
use crate::util::{Ms, Rng};
use serde::Serialize;

const SIZES: &[&str] = &["Small", "Medium", "Large"];

#[derive(Serialize)]
struct VariationView {
    id: u64,
    name: String,
    product_id: u64,
    prices: Vec<PriceView>,
}

#[derive(Serialize)]
struct PriceView {
    product_variation_id: u64,
    price: f64,
    currency: String,
    cost: f64,
    direct_cost: f64,
    notes: String,
}

fn variations(db: &Db, p: &Product) -> Vec<VariationView> {
    let count = Rng::for_item(db.seed, "product_variation", p.id).below(SIZES.len() as u64 + 1);
    (0..count)
        .map(|k| {
            // Ten slots per product keep ids unique and stable as products come and go.
            let id = p.id * 10 + k + 1;
            let step = 1.0 + 0.25 * k as f64;
            VariationView {
                id,
                name: format!("{} ({})", p.name, SIZES[k as usize]),
                product_id: p.id,
                prices: p
                    .prices
                    .iter()
                    .map(|pr| PriceView {
                        product_variation_id: id,
                        price: (pr.price * step * 100.0).round() / 100.0,
                        currency: pr.currency.to_string(),
                        cost: (pr.cost * step * 100.0).round() / 100.0,
                        direct_cost: (pr.direct_cost * step * 100.0).round() / 100.0,
                        notes: String::new(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// `GET /api/v2/products/{id}/variations` (cursor-paged).
pub fn get(c: &Ctx, db: &Db, id: &str) -> Resp {
    match id
        .parse()
        .ok()
        .and_then(|id| db.products.get(id))
        .filter(|p| !purged(*p, c.now))
    {
        Some(p) => envelope::v2_page(c, &variations(db, p)),
        None => err(404, "Product not found"),
    }
}

pub fn truth(db: &Db, now: Ms) -> Vec<u8> {
    let all: Vec<VariationView> = db
        .products
        .rows
        .iter()
        .filter(|p| !purged(*p, now))
        .flat_map(|p| variations(db, p))
        .collect();
    envelope::truth(&all)
}
