//! Writes the entities' views into a page being built (the envelopes stream records into one
//! buffer); the views themselves are the serde structs of `entities`.

pub use crate::entities::followers::deal_followers as followers;
pub use crate::entities::views::V2Opts;
use crate::json::J;
use crate::model::*;

// ------------------------------------------------------------------------------------------ v2

pub fn deal_v2(j: &mut J, db: &Db, d: &Deal, o: &V2Opts) {
    j.ser(&crate::entities::deals::deal_v2(db, d, o));
}

pub fn person_v2(j: &mut J, db: &Db, p: &Person, o: &V2Opts) {
    j.ser(&crate::entities::persons::person_v2(db, p, o));
}

pub fn org_v2(j: &mut J, db: &Db, r: &Org, o: &V2Opts) {
    j.ser(&crate::entities::organizations::org_v2(db, r, o));
}

pub fn activity_v2(j: &mut J, db: &Db, a: &Activity) {
    j.ser(&crate::entities::activities::activity_v2(db, a));
}

pub fn product_v2(j: &mut J, db: &Db, p: &Product, o: &V2Opts) {
    j.ser(&crate::entities::products::product_v2(db, p, o));
}

pub fn pipeline_v2(j: &mut J, p: &Pipeline) {
    j.ser(&crate::entities::pipelines::pipeline_v2(p));
}

pub fn stage_v2(j: &mut J, s: &Stage) {
    j.ser(&crate::entities::pipelines::stage_v2(s));
}

pub fn deal_product_v2(j: &mut J, p: &DealProduct) {
    j.ser(&crate::entities::deal_products::deal_product_v2(p));
}

pub fn v2_field(j: &mut J, e: FieldEntity, f: &FieldDef, inc: &[String]) {
    j.ser(&crate::entities::field_views::field_v2(e, f, inc));
}

// ------------------------------------------------------------------------------------------ v1

pub fn v1_field(j: &mut J, e: FieldEntity, f: &FieldDef) {
    j.ser(&crate::entities::field_views::field_v1(e, f));
}

pub fn user_v1(j: &mut J, u: &User, me: u64) {
    j.ser(&crate::entities::users::user_v1(u, me));
}

pub fn note_v1(j: &mut J, db: &Db, n: &Note, me: u64) {
    j.ser(&crate::entities::notes::note_v1(db, n, me));
}

pub fn lead_v1(j: &mut J, db: &Db, l: &Lead) {
    j.ser(&crate::entities::leads::lead_v1(db, l));
}

pub fn lead_label_v1(j: &mut J, l: &LeadLabel) {
    j.ser(&crate::entities::lead_labels::lead_label_v1(l));
}

pub fn activity_type_v1(j: &mut J, a: &ActivityType) {
    j.ser(&crate::entities::activity_types::activity_type_v1(a));
}

pub fn currency_v1(j: &mut J, c: &Currency) {
    j.ser(&crate::entities::currencies::currency_v1(c));
}

pub fn filter_v1(j: &mut J, f: &Filter) {
    j.ser(&crate::entities::filters::filter_v1(f));
}

// Legacy v1 entity shapes (deprecated list endpoints, recents).

pub fn deal_v1(j: &mut J, db: &Db, d: &Deal, flat: bool) {
    j.ser(&crate::entities::deals::deal_v1(db, d, flat));
}

pub fn person_v1(j: &mut J, db: &Db, p: &Person, flat: bool) {
    j.ser(&crate::entities::persons::person_v1(db, p, flat));
}

/// Both the legacy list and `/recents` write the owner as an object, so `flat` changes nothing.
pub fn org_v1(j: &mut J, db: &Db, o: &Org, _flat: bool) {
    j.ser(&crate::entities::organizations::org_v1(db, o));
}

pub fn activity_v1(j: &mut J, a: &Activity) {
    j.ser(&crate::entities::activities::activity_v1(a));
}

pub fn product_v1(j: &mut J, db: &Db, p: &Product, flat: bool) {
    j.ser(&crate::entities::products::product_v1(db, p, flat));
}

pub fn pipeline_v1(j: &mut J, p: &Pipeline) {
    j.ser(&crate::entities::pipelines::pipeline_v1(p));
}

pub fn stage_v1(j: &mut J, s: &Stage) {
    j.ser(&crate::entities::pipelines::stage_v1(s));
}
