//! Write endpoints: v2 POST/PATCH/DELETE for core entities and fields, v1 notes and leads.
//! Updates move `update_time` to the sim clock; deletes are soft (purged after 30 days);
//! deal updates append one `dealChange` per changed field to the deal's flow.

use crate::entities::merges;
use crate::model::*;
use crate::render::{self, V2Opts};
use crate::respond::{Ctx, Resp, err, ok_data, unknown_route, v2_invalid};
use crate::util::{Ms, parse_date, secs};
use serde_json::{Map, Value};

type Obj = Map<String, Value>;

fn parse_body(body: &[u8]) -> Result<Obj, Resp> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(v2_invalid("Expected object")),
        Err(_) => {
            // v1 clients may send form bodies.
            let m: Obj = url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            if m.is_empty() {
                Err(v2_invalid("Invalid JSON body"))
            } else {
                Ok(m)
            }
        }
    }
}

fn s(o: &Obj, k: &str) -> Option<Option<String>> {
    o.get(k).map(|v| match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        v => Some(v.to_string()),
    })
}
fn n(o: &Obj, k: &str) -> Option<Option<f64>> {
    o.get(k).map(|v| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
}
fn id(o: &Obj, k: &str) -> Option<Option<u64>> {
    n(o, k).map(|v| v.filter(|x| *x > 0.0).map(|x| x as u64))
}
fn b(o: &Obj, k: &str) -> Option<bool> {
    o.get(k).map(|v| match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => s == "true" || s == "1",
        _ => false,
    })
}
/// Sets a field from the body when the body holds its key with a value; a `null` or an absent
/// key leaves the field as it is (the fields that cannot be emptied).
fn set<V, T>(field: &mut T, got: Option<Option<V>>, value: impl FnOnce(V) -> T) {
    if let Some(Some(v)) = got {
        *field = value(v);
    }
}

/// Sets a field from the body when the body holds its key, `null` included (which empties it).
fn set_or_clear<V, T>(field: &mut T, got: Option<V>, value: impl FnOnce(V) -> T) {
    if let Some(v) = got {
        *field = value(v);
    }
}

fn label_ids(o: &Obj, k: &str) -> Option<Vec<u32>> {
    o.get(k).map(|v| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64().map(|x| x as u32))
                    .collect()
            })
            .unwrap_or_default()
    })
}
fn addr(v: &Value) -> Option<Box<Addr>> {
    match v {
        Value::String(s) => Some(Box::new(Addr::free(s))),
        Value::Object(m) => {
            let g = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").into();
            let go = |k: &str| m.get(k).and_then(Value::as_str).map(Into::into);
            if m.get("route").is_none() && m.get("locality").is_none() {
                return m
                    .get("value")
                    .and_then(Value::as_str)
                    .map(|s| Box::new(Addr::free(s)));
            }
            Some(Box::new(Addr {
                street_number: g("street_number"),
                route: g("route"),
                subpremise: go("subpremise"),
                sublocality: go("sublocality"),
                locality: g("locality"),
                admin_area_level_1: g("admin_area_level_1"),
                admin_area_level_2: go("admin_area_level_2"),
                country: g("country"),
                postal_code: g("postal_code"),
            }))
        }
        _ => None,
    }
}
fn contacts(v: &Value) -> Vec<Contact> {
    let labels = ["work", "home", "mobile", "other"];
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    let (value, label, primary) = match c {
                        Value::String(s) => (s.clone(), "work", false),
                        Value::Object(m) => (
                            m.get("value")?.as_str()?.to_string(),
                            labels
                                .iter()
                                .find(|l| m.get("label").and_then(Value::as_str) == Some(**l))
                                .copied()
                                .unwrap_or("other"),
                            m.get("primary").and_then(Value::as_bool).unwrap_or(false),
                        ),
                        _ => return None,
                    };
                    Some(Contact {
                        value: value.into(),
                        label,
                        primary,
                    })
                })
                .collect::<Vec<_>>()
        })
        .map(|mut v| {
            if !v.is_empty() && !v.iter().any(|c| c.primary) {
                v[0].primary = true;
            }
            v
        })
        .unwrap_or_default()
}
fn parse_hms(s: &str) -> Option<u32> {
    let mut it = s.split(':').map(|x| x.parse::<u32>().ok());
    let h = it.next()??;
    let m = it.next().flatten().unwrap_or(0);
    let sec = it.next().flatten().unwrap_or(0);
    Some(h * 3600 + m * 60 + sec)
}
fn tz_index(v: Option<&Value>) -> u8 {
    match v {
        Some(Value::Number(n)) => TIMEZONES
            .iter()
            .position(|t| Some(t.0 as u64) == n.as_u64())
            .unwrap_or(0) as u8,
        Some(Value::String(s)) => TIMEZONES.iter().position(|t| t.1 == s).unwrap_or(0) as u8,
        _ => 0,
    }
}

/// Parses one custom field value as sent by a client (v2 nested shapes, v1 flat strings).
fn cf_parse(
    f: &FieldDef,
    v: &Value,
    sub: &dyn Fn(&str) -> Option<Value>,
) -> Result<Option<CfVal>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let t = f.cf.ok_or("not a custom field")?;
    let bad = || {
        format!(
            "custom_fields.{}: invalid value for {} field",
            f.key,
            t.name()
        )
    };
    let obj = v.as_object();
    let field = |k: &str| obj.and_then(|o| o.get(k).cloned()).or_else(|| sub(k));
    let num = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    Ok(Some(match t {
        CfType::Varchar | CfType::VarcharAuto | CfType::Text | CfType::Phone => CfVal::Str(
            v.as_str()
                .map(Into::into)
                .unwrap_or_else(|| v.to_string().into()),
        ),
        CfType::Double => CfVal::Num(num(v).ok_or_else(bad)?),
        CfType::Monetary => {
            let amount = if let Some(o) = obj {
                o.get("value").and_then(num)
            } else {
                num(v)
            }
            .ok_or_else(bad)?;
            let cur = field("currency")
                .and_then(|c| c.as_str().map(str::to_string))
                .unwrap_or_else(|| "EUR".into());
            CfVal::Money(amount, cur.into())
        }
        CfType::Enum => {
            let x = num(obj.and_then(|o| o.get("id")).unwrap_or(v)).ok_or_else(bad)? as u32;
            if !f.options.iter().any(|o| o.0 == x) {
                return Err(bad());
            }
            CfVal::Opt(x)
        }
        CfType::Set => {
            let ids: Vec<u32> = match v {
                Value::Array(a) => a.iter().filter_map(|x| num(x).map(|x| x as u32)).collect(),
                Value::String(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
                Value::Number(n) => vec![n.as_u64().unwrap_or(0) as u32],
                _ => return Err(bad()),
            };
            if ids.is_empty() || ids.iter().any(|x| !f.options.iter().any(|o| o.0 == *x)) {
                return Err(bad());
            }
            CfVal::Set(ids)
        }
        CfType::User | CfType::Org | CfType::People => CfVal::Id(
            num(obj
                .and_then(|o| o.get("value").or(o.get("id")))
                .unwrap_or(v))
            .ok_or_else(bad)? as u64,
        ),
        CfType::Date => CfVal::Date(v.as_str().and_then(parse_date).ok_or_else(bad)?),
        CfType::DateRange => {
            let a = field("value").or_else(|| v.as_str().map(|s| Value::String(s.into())));
            let a = a
                .as_ref()
                .and_then(Value::as_str)
                .and_then(parse_date)
                .ok_or_else(bad)?;
            let u = field("until")
                .and_then(|x| x.as_str().and_then(parse_date))
                .unwrap_or(a);
            CfVal::DateRange(a, u)
        }
        CfType::Time | CfType::TimeRange => {
            let a = field("value").or_else(|| v.as_str().map(|s| Value::String(s.into())));
            let a = a
                .as_ref()
                .and_then(Value::as_str)
                .and_then(parse_hms)
                .ok_or_else(bad)?;
            let tz = tz_index(
                field("timezone_id")
                    .or_else(|| field("timezone_name"))
                    .as_ref(),
            );
            if t == CfType::Time {
                CfVal::Time(a, tz)
            } else {
                let u = field("until")
                    .and_then(|x| x.as_str().and_then(parse_hms))
                    .unwrap_or(a);
                CfVal::TimeRange(a, u, tz)
            }
        }
        CfType::Address => CfVal::Addr(addr(v).ok_or_else(bad)?),
    }))
}

/// Applies v2 `custom_fields` (or v1 flat hash keys when `flat`). Returns changed keys.
fn apply_cf(
    db: &Db,
    e: FieldEntity,
    rec_id: u64,
    cf: &mut Cf,
    o: &Obj,
    flat: bool,
) -> Result<Vec<FieldChange>, Resp> {
    let src: Obj = if flat {
        o.clone()
    } else {
        match o.get("custom_fields") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(v2_invalid("custom_fields: Expected object")),
        }
    };
    let mut changes = Vec::new();
    let defs: Vec<FieldDef> = db.custom_fields(e).cloned().collect();
    for (k, v) in &src {
        let Some(f) = defs.iter().find(|f| f.key == *k) else {
            if flat {
                continue;
            }
            return Err(v2_invalid(&format!(
                "custom_fields: Unknown custom field '{k}'"
            )));
        };
        let sub = |s: &str| src.get(&format!("{k}_{s}")).cloned();
        let nv = cf_parse(f, v, &sub).map_err(|m| v2_invalid(&m))?;
        let old = crate::seed::cf_value(db, e, rec_id, cf, f);
        if old != nv {
            changes.push((k.clone(), old.as_ref().map(cf_str), nv.as_ref().map(cf_str)));
            cf.set(f.id, nv);
        }
    }
    Ok(changes)
}

/// `(field key, old value, new value)`.
type FieldChange = (String, Option<String>, Option<String>);

/// The live row an update changes, as a copy to patch, or the API's 404 naming `what`.
fn editable<T: Rec + Clone>(table: &Table<T>, id: u64, what: &str) -> Result<T, Resp> {
    table
        .get(id)
        .filter(|r| r.deleted_time().is_none())
        .cloned()
        .ok_or_else(|| err(404, &format!("{what} not found")))
}

/// Stores a created (`updating` false) or patched row; returns its id.
fn stored<T: Rec + Clone>(table: &mut Table<T>, updating: bool, row: T) -> u64 {
    let id = row.id();
    if updating {
        table.modify(id, |x| *x = row);
    } else {
        table.insert(row);
    }
    id
}

fn deleted_v2(id: u64) -> Resp {
    ok_data(|j| {
        j.obj().ki("id", id as i64).end_obj();
    })
}

fn parse_id(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// A write's handler: the request's context, the company, the path's parameters and the body.
pub type Handler = fn(&Ctx, &mut Db, &[&str], &[u8]) -> Resp;

/// Runs a handler on the body's JSON object; a body that is none is the API's 400 before
/// anything else.
fn obj(body: &[u8], f: impl FnOnce(&Obj) -> Result<Resp, Resp>) -> Resp {
    match parse_body(body) {
        Ok(o) => f(&o).unwrap_or_else(|e| e),
        Err(e) => e,
    }
}

/// Every write the API serves: version, method, path (in the route table's syntax) and
/// handler. The route table registers them; churn reaches them through [`dispatch`], which
/// matches the same paths.
pub const WRITES: &[(u8, &str, &str, Handler)] = &[
    (2, "POST", "/deals", |c, db, _, b| {
        obj(b, |o| deal_upsert(c, db, None, o))
    }),
    (2, "PATCH", "/deals/{id}", |c, db, p, b| {
        obj(b, |o| match parse_id(p[0]) {
            Some(id) => deal_upsert(c, db, Some(id), o),
            None => Err(err(404, "Deal not found")),
        })
    }),
    (2, "DELETE", "/deals/{id}", |c, db, p, b| {
        obj(b, |_| delete_deal(c, db, p[0]))
    }),
    (2, "POST", "/persons", |c, db, _, b| {
        obj(b, |o| person_upsert(db, None, o, c.now))
    }),
    (2, "PATCH", "/persons/{id}", |c, db, p, b| {
        obj(b, |o| person_upsert(db, some_id(p[0]), o, c.now))
    }),
    (2, "DELETE", "/persons/{id}", |c, db, p, b| {
        obj(b, |_| soft_delete(&mut db.persons, p[0], c.now, "Person"))
    }),
    (2, "POST", "/organizations", |c, db, _, b| {
        obj(b, |o| org_upsert(db, None, o, c.now))
    }),
    (2, "PATCH", "/organizations/{id}", |c, db, p, b| {
        obj(b, |o| org_upsert(db, some_id(p[0]), o, c.now))
    }),
    (2, "DELETE", "/organizations/{id}", |c, db, p, b| {
        obj(b, |_| {
            soft_delete(&mut db.orgs, p[0], c.now, "Organization")
        })
    }),
    (2, "POST", "/activities", |c, db, _, b| {
        obj(b, |o| activity_upsert(c, db, None, o))
    }),
    (2, "PATCH", "/activities/{id}", |c, db, p, b| {
        obj(b, |o| activity_upsert(c, db, some_id(p[0]), o))
    }),
    (2, "DELETE", "/activities/{id}", |c, db, p, b| {
        obj(b, |_| {
            soft_delete(&mut db.activities, p[0], c.now, "Activity")
        })
    }),
    (2, "POST", "/products", |c, db, _, b| {
        obj(b, |o| product_upsert(c, db, None, o))
    }),
    (2, "PATCH", "/products/{id}", |c, db, p, b| {
        obj(b, |o| product_upsert(c, db, some_id(p[0]), o))
    }),
    (2, "DELETE", "/products/{id}", |c, db, p, b| {
        obj(b, |_| soft_delete(&mut db.products, p[0], c.now, "Product"))
    }),
    (2, "POST", "/pipelines", |c, db, _, b| {
        obj(b, |o| pipeline_upsert(db, None, o, c.now))
    }),
    (2, "PATCH", "/pipelines/{id}", |c, db, p, b| {
        obj(b, |o| pipeline_upsert(db, some_id(p[0]), o, c.now))
    }),
    (2, "DELETE", "/pipelines/{id}", |c, db, p, b| {
        obj(b, |_| {
            soft_delete(&mut db.pipelines, p[0], c.now, "Pipeline")
        })
    }),
    (2, "POST", "/stages", |c, db, _, b| {
        obj(b, |o| stage_upsert(db, None, o, c.now))
    }),
    (2, "PATCH", "/stages/{id}", |c, db, p, b| {
        obj(b, |o| stage_upsert(db, some_id(p[0]), o, c.now))
    }),
    (2, "DELETE", "/stages/{id}", |c, db, p, b| {
        obj(b, |_| soft_delete(&mut db.stages, p[0], c.now, "Stage"))
    }),
    (2, "POST", "/dealFields", |c, db, _, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Deal, "POST", None, o, c.now)
        })
    }),
    (2, "PATCH", "/dealFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Deal, "PATCH", Some(p[0]), o, c.now)
        })
    }),
    (2, "DELETE", "/dealFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Deal, "DELETE", Some(p[0]), o, c.now)
        })
    }),
    (2, "POST", "/personFields", |c, db, _, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Person, "POST", None, o, c.now)
        })
    }),
    (2, "PATCH", "/personFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Person, "PATCH", Some(p[0]), o, c.now)
        })
    }),
    (2, "DELETE", "/personFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Person, "DELETE", Some(p[0]), o, c.now)
        })
    }),
    (2, "POST", "/organizationFields", |c, db, _, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Org, "POST", None, o, c.now)
        })
    }),
    (2, "PATCH", "/organizationFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Org, "PATCH", Some(p[0]), o, c.now)
        })
    }),
    (2, "DELETE", "/organizationFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Org, "DELETE", Some(p[0]), o, c.now)
        })
    }),
    (2, "POST", "/productFields", |c, db, _, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Product, "POST", None, o, c.now)
        })
    }),
    (2, "PATCH", "/productFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Product, "PATCH", Some(p[0]), o, c.now)
        })
    }),
    (2, "DELETE", "/productFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Product, "DELETE", Some(p[0]), o, c.now)
        })
    }),
    (2, "POST", "/activityFields", |c, db, _, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Activity, "POST", None, o, c.now)
        })
    }),
    (2, "PATCH", "/activityFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Activity, "PATCH", Some(p[0]), o, c.now)
        })
    }),
    (2, "DELETE", "/activityFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Activity, "DELETE", Some(p[0]), o, c.now)
        })
    }),
    (2, "POST", "/projectFields", |c, db, _, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Project, "POST", None, o, c.now)
        })
    }),
    (2, "PATCH", "/projectFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Project, "PATCH", Some(p[0]), o, c.now)
        })
    }),
    (2, "DELETE", "/projectFields/{id}", |c, db, p, b| {
        obj(b, |o| {
            field_write(db, FieldEntity::Project, "DELETE", Some(p[0]), o, c.now)
        })
    }),
    (1, "POST", "/notes", |c, db, _, b| {
        obj(b, |o| note_upsert(c, db, None, o))
    }),
    (1, "PUT", "/notes/{id}", |c, db, p, b| {
        obj(b, |o| note_upsert(c, db, some_id(p[0]), o))
    }),
    (1, "DELETE", "/notes/{id}", |c, db, p, b| {
        obj(b, |_| delete_note(c, db, p[0]))
    }),
    (1, "POST", "/leads", |c, db, _, b| {
        obj(b, |o| lead_upsert(c, db, None, o))
    }),
    (1, "PATCH", "/leads/{id}", |c, db, p, b| {
        obj(b, |o| match db.lead_by_uuid.get(p[0]).copied() {
            Some(lid) => lead_upsert(c, db, Some(lid), o),
            None => Err(crate::respond::lead_not_found()),
        })
    }),
    (1, "DELETE", "/leads/{id}", |_, db, p, b| {
        obj(b, |_| delete_lead(db, p[0]))
    }),
    (1, "POST", "/webhooks", |c, db, _, b| {
        crate::entities::webhooks::create(c, db, b)
    }),
    (1, "DELETE", "/webhooks/{id}", |_, db, p, _| {
        crate::entities::webhooks::delete(db, p[0])
    }),
    (1, "PUT", "/persons/{id}/merge", |c, db, p, b| {
        merges::merge(c, db, merges::Merged::Person, p[0], b)
    }),
    (1, "PUT", "/organizations/{id}/merge", |c, db, p, b| {
        merges::merge(c, db, merges::Merged::Organization, p[0], b)
    }),
    (1, "PUT", "/deals/{id}/merge", |c, db, p, b| {
        merges::merge(c, db, merges::Merged::Deal, p[0], b)
    }),
];

/// An id from the path; one that is no number names no record (a 404 from the handler).
fn some_id(s: &str) -> Option<u64> {
    parse_id(s).or(Some(0))
}

/// The write of [`WRITES`] that a path names, with the path's parameters.
fn find<'a>(ver: u8, method: &str, segs: &[&'a str]) -> Option<(Handler, Vec<&'a str>)> {
    WRITES.iter().find_map(|(v, m, path, run)| {
        if *v != ver || *m != method {
            return None;
        }
        let pattern: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if pattern.len() != segs.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, s) in pattern.iter().zip(segs) {
            if p.starts_with('{') {
                params.push(*s);
            } else if p != s {
                return None;
            }
        }
        Some((*run, params))
    })
}

/// Runs one write, whatever reached it (a client through the route table, or churn): what
/// it changes in the main entities becomes webhook events.
pub fn run(c: &Ctx, db: &mut Db, handler: Handler, params: &[&str], body: &[u8]) -> Resp {
    let origin = crate::webhook_delivery::Origin::of(c);
    crate::webhook_delivery::observe(db, origin, |db| handler(c, db, params, body))
}

/// A write by method and path segments, as churn sends it and as the route table's fallback
/// passes on the methods a path does not serve: a body that is no JSON object is a 400, a
/// path that is no write an unknown method.
pub fn dispatch(c: &Ctx, db: &mut Db, ver: u8, method: &str, segs: &[&str], body: &[u8]) -> Resp {
    match find(ver, method, segs) {
        Some((handler, params)) => run(c, db, handler, &params, body),
        None => {
            let origin = crate::webhook_delivery::Origin::of(c);
            crate::webhook_delivery::observe(db, origin, |_| match parse_body(body) {
                Ok(_) => unknown_route(),
                Err(e) => e,
            })
        }
    }
}

/// `DELETE /v2/deals/{id}`: soft, with the status change in the deal's flow.
fn delete_deal(c: &Ctx, db: &mut Db, id: &str) -> Result<Resp, Resp> {
    let id = parse_id(id).unwrap_or(0);
    let t = secs(c.now);
    let prev = db
        .deals
        .get(id)
        .filter(|d| d.deleted_time.is_none())
        .map(|d| d.status.name());
    match prev {
        Some(prev) => {
            db.deals.modify(id, |d| {
                d.deleted_time = Some(t);
                d.update_time = t;
            });
            push_change(
                db,
                id,
                c.me,
                "status",
                Some(prev.to_string()),
                Some("deleted".into()),
                t,
            );
            Ok(deleted_v2(id))
        }
        None => Err(err(404, "Deal not found")),
    }
}

/// `DELETE /v1/notes/{id}`: soft.
fn delete_note(c: &Ctx, db: &mut Db, id: &str) -> Result<Resp, Resp> {
    let id = parse_id(id).unwrap_or(0);
    let t = secs(c.now);
    match db.notes.get(id).filter(|n| n.deleted_time.is_none()) {
        Some(_) => {
            db.notes.modify(id, |n| {
                n.deleted_time = Some(t);
                n.update_time = t;
            });
            Ok(ok_data(|j| {
                j.b(true);
            }))
        }
        None => Err(err(404, "Note not found")),
    }
}

/// `DELETE /v1/leads/{id}`: for good (leads carry no deleted flag to show).
fn delete_lead(db: &mut Db, id: &str) -> Result<Resp, Resp> {
    match db.lead_by_uuid.remove(id) {
        Some(lid) => {
            db.leads.remove(lid);
            let id = id.to_string();
            Ok(ok_data(|j| {
                j.ser(&serde_json::json!({ "id": id }));
            }))
        }
        None => Err(crate::respond::lead_not_found()),
    }
}

fn soft_delete<T: Rec + Clone + SoftDelete>(
    t: &mut Table<T>,
    id: &str,
    now: Ms,
    what: &str,
) -> Result<Resp, Resp> {
    let id = parse_id(id).unwrap_or(0);
    match t.get(id) {
        Some(r) if r.deleted_time().is_none() => {
            t.modify(id, |r| r.mark_deleted(secs(now)));
            Ok(deleted_v2(id))
        }
        _ => Err(err(404, &format!("{what} not found"))),
    }
}

pub trait SoftDelete {
    fn mark_deleted(&mut self, t: Ms);
}
macro_rules! soft {
    ($($t:ty),*) => {$(
        impl SoftDelete for $t {
            fn mark_deleted(&mut self, t: Ms) {
                self.deleted_time = Some(t);
                self.update_time = t;
            }
        }
    )*};
}
soft!(Person, Org, Activity, Product, Pipeline, Stage);

/// How the flow writes a field's value.
type Shown = fn(&Deal) -> Option<String>;

/// The deal fields a deal's flow records changes of, under their flow keys, as the flow
/// writes their values.
const DEAL_FLOW_FIELDS: &[(&str, Shown)] = &[
    ("title", |d| Some(d.title.to_string())),
    ("user_id", |d| Some(d.owner_id.to_string())),
    ("person_id", |d| d.person_id.map(|x| x.to_string())),
    ("org_id", |d| d.org_id.map(|x| x.to_string())),
    ("pipeline_id", |d| Some(d.pipeline_id.to_string())),
    ("stage_id", |d| Some(d.stage_id.to_string())),
    ("value", |d| Some(crate::util::fmt_num(d.value))),
    ("currency", |d| Some(d.currency.to_string())),
    ("status", |d| Some(d.status.name().into())),
    ("probability", |d| d.probability.map(|x| x.to_string())),
    ("lost_reason", |d| {
        d.lost_reason.as_deref().map(str::to_string)
    }),
    ("visible_to", |d| Some(d.visible_to.to_string())),
    ("expected_close_date", |d| {
        d.expected_close_date.map(crate::util::date)
    }),
    ("label", |d| Some(join(&d.label_ids))),
    ("is_archived", |d| {
        Some(d.archive_time.is_some().to_string())
    }),
];

fn deal_upsert(c: &Ctx, db: &mut Db, rid: Option<u64>, o: &Obj) -> Result<Resp, Resp> {
    let t = secs(c.now);
    let mut d = match rid {
        Some(x) => editable(&db.deals, x, "Deal")?,
        None => {
            let Some(Some(title)) = s(o, "title") else {
                return Err(v2_invalid("title: Required"));
            };
            let pipeline_id = id_or(o, "pipeline_id").unwrap_or(1);
            let stage_id = id_or(o, "stage_id")
                .or_else(|| {
                    db.stages
                        .rows
                        .iter()
                        .find(|s| s.pipeline_id == pipeline_id)
                        .map(|s| s.id)
                })
                .unwrap_or(1);
            Deal {
                id: db.deals.next_id,
                title: title.into(),
                creator_user_id: c.me,
                owner_id: c.me,
                person_id: None,
                org_id: None,
                pipeline_id,
                stage_id,
                value: 0.0,
                currency: "EUR".into(),
                add_time: t,
                update_time: t,
                stage_change_time: None,
                status: DealStatus::Open,
                probability: None,
                lost_reason: None,
                visible_to: 3,
                won_time: None,
                lost_time: None,
                close_time: None,
                expected_close_date: None,
                label_ids: Vec::new(),
                origin: "API",
                archive_time: None,
                deleted_time: None,
                cf: Cf::default(),
            }
        }
    };
    let before = d.clone();
    set(&mut d.title, s(o, "title"), |v| v.into());
    set(&mut d.owner_id, id(o, "owner_id"), |v| v);
    set_or_clear(&mut d.person_id, id(o, "person_id"), |v| v);
    set_or_clear(&mut d.org_id, id(o, "org_id"), |v| v);
    set(&mut d.pipeline_id, id(o, "pipeline_id"), |v| v);
    if let Some(Some(v)) = id(o, "stage_id") {
        match db.stages.get(v) {
            Some(s) => {
                d.stage_id = v;
                d.pipeline_id = s.pipeline_id;
            }
            None => return Err(v2_invalid("stage_id: Stage not found")),
        }
    }
    set_or_clear(&mut d.value, n(o, "value"), |v| v.unwrap_or(0.0));
    set(&mut d.currency, s(o, "currency"), |v| v.into());
    set_or_clear(&mut d.probability, n(o, "probability"), |v| {
        v.map(|x| x as u32)
    });
    set_or_clear(&mut d.lost_reason, s(o, "lost_reason"), |v| {
        v.map(Into::into)
    });
    set(&mut d.visible_to, n(o, "visible_to"), |v| v as u8);
    set_or_clear(
        &mut d.expected_close_date,
        s(o, "expected_close_date"),
        |v| v.and_then(|x| parse_date(&x)),
    );
    set_or_clear(&mut d.label_ids, label_ids(o, "label_ids"), |v| v);
    if let Some(Some(st)) = s(o, "status") {
        let Some(st) = DealStatus::parse(&st) else {
            return Err(v2_invalid(
                "status: Invalid enum value. Expected 'open' | 'won' | 'lost'",
            ));
        };
        if st != d.status {
            d.status = st;
            d.won_time = (st == DealStatus::Won).then_some(t);
            d.lost_time = (st == DealStatus::Lost).then_some(t);
            d.close_time = (st != DealStatus::Open).then_some(t);
        }
    }
    if let Some(a) = b(o, "is_archived") {
        d.archive_time = if a { d.archive_time.or(Some(t)) } else { None };
    }
    if d.stage_id != before.stage_id {
        d.stage_change_time = Some(t);
    }
    let cf_changes = {
        let mut cf = d.cf.clone();
        let ch = apply_cf(db, FieldEntity::Deal, d.id, &mut cf, o, false)?;
        d.cf = cf;
        ch
    };
    // One dealChange per changed field.
    let mut changes: Vec<FieldChange> = Vec::new();
    if rid.is_some() {
        for (key, shown) in DEAL_FLOW_FIELDS {
            let (old, new) = (shown(&before), shown(&d));
            if old != new {
                changes.push((key.to_string(), old, new));
            }
        }
        changes.extend(cf_changes);
    }
    d.update_time = if rid.is_some() && changes.is_empty() {
        before.update_time
    } else {
        t
    };
    let did = d.id;
    if rid.is_some() {
        db.deals.modify(did, |x| *x = d);
        for (k, a, b) in changes {
            push_change(db, did, c.me, &k, a, b, t);
        }
    } else {
        db.deals.insert(d);
    }
    let d = db.deals.get(did).ok_or_else(|| err(500, "lost deal"))?;
    Ok(ok_data(|j| render::deal_v2(j, db, d, &V2Opts::default())))
}

fn join(v: &[u32]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn id_or(o: &Obj, k: &str) -> Option<u64> {
    id(o, k).flatten()
}

fn person_upsert(db: &mut Db, rid: Option<u64>, o: &Obj, now: Ms) -> Result<Resp, Resp> {
    let t = secs(now);
    let mut p = match rid {
        Some(x) => editable(&db.persons, x, "Person")?,
        None => {
            if !matches!(s(o, "name"), Some(Some(_))) {
                return Err(v2_invalid("name: Required"));
            }
            Person {
                id: db.persons.next_id,
                first_name: "".into(),
                last_name: "".into(),
                owner_id: 1,
                org_id: None,
                emails: Vec::new(),
                phones: Vec::new(),
                visible_to: 3,
                label_ids: Vec::new(),
                job_title: None,
                birthday: None,
                postal_address: None,
                add_time: t,
                update_time: t,
                deleted_time: None,
                cf: Cf::default(),
            }
        }
    };
    if let Some(Some(name)) = s(o, "name") {
        let mut it = name.splitn(2, ' ');
        p.first_name = it.next().unwrap_or("").into();
        p.last_name = it.next().unwrap_or("").into();
    }
    set(&mut p.owner_id, id(o, "owner_id"), |v| v);
    set_or_clear(&mut p.org_id, id(o, "org_id"), |v| v);
    set_or_clear(&mut p.emails, o.get("emails"), contacts);
    set_or_clear(&mut p.phones, o.get("phones"), contacts);
    set(&mut p.visible_to, n(o, "visible_to"), |v| v as u8);
    set_or_clear(&mut p.label_ids, label_ids(o, "label_ids"), |v| v);
    set_or_clear(&mut p.job_title, s(o, "job_title"), |v| v.map(Into::into));
    set_or_clear(&mut p.birthday, s(o, "birthday"), |v| {
        v.and_then(|x| parse_date(&x))
    });
    set_or_clear(&mut p.postal_address, o.get("postal_address"), addr);
    let mut cf = p.cf.clone();
    apply_cf(db, FieldEntity::Person, p.id, &mut cf, o, false)?;
    p.cf = cf;
    p.update_time = t;
    let pid = stored(&mut db.persons, rid.is_some(), p);
    let p = db.persons.get(pid).ok_or_else(|| err(500, "lost"))?;
    Ok(ok_data(|j| render::person_v2(j, db, p, &V2Opts::default())))
}

fn org_upsert(db: &mut Db, rid: Option<u64>, o: &Obj, now: Ms) -> Result<Resp, Resp> {
    let t = secs(now);
    let mut r = match rid {
        Some(x) => editable(&db.orgs, x, "Organization")?,
        None => {
            if !matches!(s(o, "name"), Some(Some(_))) {
                return Err(v2_invalid("name: Required"));
            }
            Org {
                id: db.orgs.next_id,
                name: "".into(),
                owner_id: 1,
                address: None,
                visible_to: 3,
                label_ids: Vec::new(),
                website: None,
                industry: None,
                annual_revenue: None,
                employee_count: None,
                add_time: t,
                update_time: t,
                deleted_time: None,
                cf: Cf::default(),
            }
        }
    };
    set(&mut r.name, s(o, "name"), |v| v.into());
    set(&mut r.owner_id, id(o, "owner_id"), |v| v);
    set_or_clear(&mut r.address, o.get("address"), addr);
    set(&mut r.visible_to, n(o, "visible_to"), |v| v as u8);
    set_or_clear(&mut r.label_ids, label_ids(o, "label_ids"), |v| v);
    set_or_clear(&mut r.website, s(o, "website"), |v| v.map(Into::into));
    set_or_clear(&mut r.industry, n(o, "industry"), |v| v.map(|x| x as u32));
    set_or_clear(&mut r.annual_revenue, n(o, "annual_revenue"), |v| {
        v.map(|x| x as i64)
    });
    set_or_clear(&mut r.employee_count, n(o, "employee_count"), |v| {
        v.map(|x| x as i64)
    });
    let mut cf = r.cf.clone();
    apply_cf(db, FieldEntity::Org, r.id, &mut cf, o, false)?;
    r.cf = cf;
    r.update_time = t;
    let rid2 = stored(&mut db.orgs, rid.is_some(), r);
    let r = db.orgs.get(rid2).ok_or_else(|| err(500, "lost"))?;
    Ok(ok_data(|j| render::org_v2(j, db, r, &V2Opts::default())))
}

fn activity_upsert(c: &Ctx, db: &mut Db, rid: Option<u64>, o: &Obj) -> Result<Resp, Resp> {
    let t = secs(c.now);
    let mut a = match rid {
        Some(x) => editable(&db.activities, x, "Activity")?,
        None => Activity {
            id: db.activities.next_id,
            subject: "Call".into(),
            type_key: "call".into(),
            owner_id: c.me,
            creator_user_id: c.me,
            deal_id: None,
            lead_id: None,
            person_id: None,
            org_id: None,
            due_date: Some(crate::util::days_of(c.now)),
            due_time: None,
            duration: None,
            busy: false,
            done: false,
            marked_as_done_time: None,
            priority: None,
            note: None,
            public_description: None,
            location: None,
            add_time: t,
            update_time: t,
            deleted_time: None,
        },
    };
    set(&mut a.subject, s(o, "subject"), |v| v.into());
    set(&mut a.type_key, s(o, "type"), |v| v.into());
    set(&mut a.owner_id, id(o, "owner_id"), |v| v);
    set_or_clear(&mut a.deal_id, id(o, "deal_id"), |v| v);
    set_or_clear(&mut a.lead_id, s(o, "lead_id"), |v| v.map(Into::into));
    set_or_clear(&mut a.person_id, id(o, "person_id"), |v| v);
    set_or_clear(&mut a.org_id, id(o, "org_id"), |v| v);
    set_or_clear(&mut a.due_date, s(o, "due_date"), |v| {
        v.and_then(|x| parse_date(&x))
    });
    set_or_clear(&mut a.due_time, s(o, "due_time"), |v| {
        v.and_then(|x| parse_hms(&x))
    });
    set_or_clear(&mut a.duration, s(o, "duration"), |v| {
        v.and_then(|x| parse_hms(&x))
    });
    set_or_clear(&mut a.busy, b(o, "busy"), |v| v);
    if let Some(v) = b(o, "done") {
        if v && !a.done {
            a.marked_as_done_time = Some(t);
        }
        if !v {
            a.marked_as_done_time = None;
        }
        a.done = v;
    }
    set_or_clear(&mut a.note, s(o, "note"), |v| v.map(Into::into));
    set_or_clear(&mut a.public_description, s(o, "public_description"), |v| {
        v.map(Into::into)
    });
    set_or_clear(&mut a.priority, n(o, "priority"), |v| v.map(|x| x as u32));
    set_or_clear(&mut a.location, o.get("location"), addr);
    a.update_time = t;
    let aid = stored(&mut db.activities, rid.is_some(), a);
    let a = db.activities.get(aid).ok_or_else(|| err(500, "lost"))?;
    Ok(ok_data(|j| render::activity_v2(j, db, a)))
}

fn product_upsert(c: &Ctx, db: &mut Db, rid: Option<u64>, o: &Obj) -> Result<Resp, Resp> {
    let t = secs(c.now);
    let mut p = match rid {
        Some(x) => editable(&db.products, x, "Product")?,
        None => {
            if !matches!(s(o, "name"), Some(Some(_))) {
                return Err(v2_invalid("name: Required"));
            }
            Product {
                id: db.products.next_id,
                name: "".into(),
                code: "".into(),
                unit: "".into(),
                tax: 0.0,
                description: None,
                category: None,
                owner_id: c.me,
                visible_to: 3,
                is_linkable: true,
                billing_frequency: "one-time",
                billing_frequency_cycles: None,
                prices: Vec::new(),
                add_time: t,
                update_time: t,
                deleted_time: None,
                cf: Cf::default(),
            }
        }
    };
    set(&mut p.name, s(o, "name"), |v| v.into());
    set_or_clear(&mut p.code, s(o, "code"), |v| v.unwrap_or_default().into());
    set_or_clear(&mut p.unit, s(o, "unit"), |v| v.unwrap_or_default().into());
    set_or_clear(&mut p.tax, n(o, "tax"), |v| v.unwrap_or(0.0));
    set_or_clear(&mut p.description, s(o, "description"), |v| {
        v.map(Into::into)
    });
    set_or_clear(&mut p.category, s(o, "category"), |v| v.map(Into::into));
    set(&mut p.owner_id, id(o, "owner_id"), |v| v);
    set(&mut p.visible_to, n(o, "visible_to"), |v| v as u8);
    if let Some(Some(bf)) = s(o, "billing_frequency") {
        p.billing_frequency = [
            "one-time",
            "annually",
            "semi-annually",
            "quarterly",
            "monthly",
            "weekly",
        ]
        .into_iter()
        .find(|x| *x == bf)
        .ok_or_else(|| v2_invalid("billing_frequency: Invalid enum value"))?;
    }
    if let Some(Value::Array(a)) = o.get("prices") {
        p.prices = a
            .iter()
            .filter_map(|x| {
                let m = x.as_object()?;
                Some(Price {
                    currency: m.get("currency")?.as_str()?.into(),
                    price: m.get("price").and_then(Value::as_f64).unwrap_or(0.0),
                    cost: m.get("cost").and_then(Value::as_f64).unwrap_or(0.0),
                    direct_cost: m.get("direct_cost").and_then(Value::as_f64).unwrap_or(0.0),
                })
            })
            .collect();
    }
    let mut cf = p.cf.clone();
    apply_cf(db, FieldEntity::Product, p.id, &mut cf, o, false)?;
    p.cf = cf;
    p.update_time = t;
    let pid = stored(&mut db.products, rid.is_some(), p);
    let p = db.products.get(pid).ok_or_else(|| err(500, "lost"))?;
    Ok(ok_data(|j| {
        render::product_v2(j, db, p, &V2Opts::default())
    }))
}

fn pipeline_upsert(db: &mut Db, rid: Option<u64>, o: &Obj, now: Ms) -> Result<Resp, Resp> {
    let t = secs(now);
    let mut p = match rid {
        Some(x) => editable(&db.pipelines, x, "Pipeline")?,
        None => {
            if !matches!(s(o, "name"), Some(Some(_))) {
                return Err(v2_invalid("name: Required"));
            }
            Pipeline {
                id: db.pipelines.next_id,
                name: "".into(),
                order_nr: db.pipelines.rows.len() as u32 + 1,
                probability_enabled: false,
                add_time: t,
                update_time: t,
                deleted_time: None,
            }
        }
    };
    set(&mut p.name, s(o, "name"), |v| v.into());
    set_or_clear(
        &mut p.probability_enabled,
        b(o, "is_deal_probability_enabled"),
        |v| v,
    );
    p.update_time = t;
    let pid = stored(&mut db.pipelines, rid.is_some(), p);
    let p = db.pipelines.get(pid).ok_or_else(|| err(500, "lost"))?;
    Ok(ok_data(|j| render::pipeline_v2(j, p)))
}

fn stage_upsert(db: &mut Db, rid: Option<u64>, o: &Obj, now: Ms) -> Result<Resp, Resp> {
    let t = secs(now);
    let mut st = match rid {
        Some(x) => editable(&db.stages, x, "Stage")?,
        None => {
            let (Some(Some(_)), Some(Some(pid))) = (s(o, "name"), id(o, "pipeline_id")) else {
                return Err(v2_invalid("name, pipeline_id: Required"));
            };
            Stage {
                id: db.stages.next_id,
                pipeline_id: pid,
                name: "".into(),
                order_nr: db
                    .stages
                    .rows
                    .iter()
                    .filter(|s| s.pipeline_id == pid)
                    .count() as u32
                    + 1,
                probability: 100,
                rotten_days: None,
                add_time: t,
                update_time: t,
                deleted_time: None,
            }
        }
    };
    set(&mut st.name, s(o, "name"), |v| v.into());
    set(&mut st.pipeline_id, id(o, "pipeline_id"), |v| v);
    set(&mut st.probability, n(o, "deal_probability"), |v| v as u32);
    if let Some(v) = b(o, "is_deal_rot_enabled") {
        st.rotten_days = if v { st.rotten_days.or(Some(30)) } else { None };
    }
    set_or_clear(&mut st.rotten_days, n(o, "days_to_rotten"), |v| {
        v.map(|x| x as u32)
    });
    st.update_time = t;
    let sid = stored(&mut db.stages, rid.is_some(), st);
    let st = db.stages.get(sid).ok_or_else(|| err(500, "lost"))?;
    Ok(ok_data(|j| render::stage_v2(j, st)))
}

fn note_upsert(c: &Ctx, db: &mut Db, rid: Option<u64>, o: &Obj) -> Result<Resp, Resp> {
    let t = secs(c.now);
    let mut n0 = match rid {
        Some(x) => editable(&db.notes, x, "Note")?,
        None => {
            let Some(Some(_)) = s(o, "content") else {
                return Err(err(400, "Content is required"));
            };
            if ["deal_id", "person_id", "org_id", "lead_id"]
                .iter()
                .all(|k| !o.contains_key(*k))
            {
                return Err(err(
                    400,
                    "Note must be attached to a deal, person, organization or lead",
                ));
            }
            Note {
                id: db.notes.next_id,
                content: "".into(),
                user_id: c.me,
                last_update_user_id: c.me,
                deal_id: None,
                person_id: None,
                org_id: None,
                lead_id: None,
                pinned_to_deal: false,
                pinned_to_person: false,
                pinned_to_org: false,
                pinned_to_lead: false,
                add_time: t,
                update_time: t,
                deleted_time: None,
            }
        }
    };
    if let Some(Some(v)) = s(o, "content") {
        n0.content = v.into();
    }
    if let Some(v) = id(o, "deal_id") {
        n0.deal_id = v;
    }
    if let Some(v) = id(o, "person_id") {
        n0.person_id = v;
    }
    if let Some(v) = id(o, "org_id") {
        n0.org_id = v;
    }
    if let Some(v) = s(o, "lead_id") {
        n0.lead_id = v.map(Into::into);
    }
    if let Some(Some(v)) = id(o, "user_id") {
        n0.user_id = v;
    }
    for (k, slot) in [
        ("pinned_to_deal_flag", &mut n0.pinned_to_deal),
        ("pinned_to_person_flag", &mut n0.pinned_to_person),
        ("pinned_to_organization_flag", &mut n0.pinned_to_org),
        ("pinned_to_lead_flag", &mut n0.pinned_to_lead),
    ] {
        if let Some(v) = b(o, k) {
            *slot = v;
        }
    }
    n0.last_update_user_id = c.me;
    n0.update_time = t;
    let nid = stored(&mut db.notes, rid.is_some(), n0);
    let n0 = db.notes.get(nid).ok_or_else(|| err(500, "lost"))?;
    Ok(ok_data(|j| render::note_v1(j, db, n0, c.me)))
}

fn lead_upsert(c: &Ctx, db: &mut Db, rid: Option<u64>, o: &Obj) -> Result<Resp, Resp> {
    let t = c.now;
    let mut l = match rid {
        Some(x) => db
            .leads
            .get(x)
            .cloned()
            .ok_or_else(crate::respond::lead_not_found)?,
        None => {
            let Some(Some(_)) = s(o, "title") else {
                return Err(err(400, "Validation failed: title: Required"));
            };
            if !o.contains_key("person_id") && !o.contains_key("organization_id") {
                return Err(err(
                    400,
                    "A lead must be linked to a person or an organization",
                ));
            }
            let mut r = crate::util::Rng::for_item(db.seed, "new_lead", db.leads.next_id);
            Lead {
                id: db.leads.next_id,
                uuid: r.uuid().to_string().into(),
                title: "".into(),
                owner_id: c.me,
                creator_id: c.me,
                label_ids: Vec::new(),
                person_id: None,
                org_id: None,
                source_name: "API",
                origin: "API",
                was_seen: false,
                value: None,
                expected_close_date: None,
                visible_to: 3,
                archive_time: None,
                add_time: t,
                update_time: t,
                deleted_time: None,
                cf: Cf::default(),
            }
        }
    };
    set(&mut l.title, s(o, "title"), |v| v.into());
    set(&mut l.owner_id, id(o, "owner_id"), |v| v);
    set_or_clear(&mut l.person_id, id(o, "person_id"), |v| v);
    set_or_clear(&mut l.org_id, id(o, "organization_id"), |v| v);
    if let Some(v) = o.get("label_ids") {
        let ids: Vec<&str> = v
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        l.label_ids = db
            .simple
            .lead_labels
            .iter()
            .filter(|x| ids.contains(&&*x.id))
            .map(|x| x.seq)
            .collect();
    }
    if let Some(v) = o.get("value") {
        l.value = v.as_object().and_then(|m| {
            Some((
                m.get("amount")?.as_f64()?,
                m.get("currency")
                    .and_then(Value::as_str)
                    .unwrap_or("EUR")
                    .into(),
            ))
        });
    }
    set_or_clear(
        &mut l.expected_close_date,
        s(o, "expected_close_date"),
        |v| v.and_then(|x| parse_date(&x)),
    );
    set(&mut l.visible_to, s(o, "visible_to"), |v| {
        v.parse().unwrap_or(3)
    });
    set_or_clear(&mut l.was_seen, b(o, "was_seen"), |v| v);
    if let Some(v) = b(o, "is_archived") {
        l.archive_time = if v { l.archive_time.or(Some(t)) } else { None };
    }
    let mut cf = l.cf.clone();
    apply_cf(db, FieldEntity::Lead, l.id, &mut cf, o, true)?;
    l.cf = cf;
    l.update_time = t;
    let lid = l.id;
    if rid.is_some() {
        db.leads.modify(lid, |x| *x = l);
    } else {
        db.lead_by_uuid.insert(l.uuid.clone(), lid);
        db.leads.insert(l);
    }
    let l = db.leads.get(lid).ok_or_else(|| err(500, "lost"))?;
    let mut r = ok_data(|j| render::lead_v1(j, db, l));
    if rid.is_none() {
        r.status = 201;
    }
    Ok(r)
}

/// v2 `POST/PATCH/DELETE /{entity}Fields[/{field_code}]`.
fn field_write(
    db: &mut Db,
    e: FieldEntity,
    method: &str,
    code: Option<&str>,
    o: &Obj,
    now: Ms,
) -> Result<Resp, Resp> {
    let t = secs(now);
    match (method, code) {
        ("POST", None) => {
            let Some(Some(name)) = s(o, "field_name") else {
                return Err(v2_invalid("field_name: Required"));
            };
            let Some(Some(ft)) = s(o, "field_type") else {
                return Err(v2_invalid("field_type: Required"));
            };
            let Some(ct) = CfType::parse(&ft) else {
                return Err(v2_invalid("field_type: Invalid enum value"));
            };
            let labels = o
                .get("options")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.get("label").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let f = db.add_field(e, name, ct, labels, t);
            Ok(ok_data(|j| render::v2_field(j, e, &f, &[])))
        }
        ("PATCH", Some(code)) => {
            let f = db
                .fields
                .get_mut(&e)
                .and_then(|v| {
                    v.iter_mut()
                        .find(|f| f.active && f.is_custom() && f.key == code)
                })
                .ok_or_else(|| err(404, "Field not found"))?;
            if let Some(Some(name)) = s(o, "field_name") {
                f.name = name;
            }
            f.update_time = t;
            let f = f.clone();
            Ok(ok_data(|j| render::v2_field(j, e, &f, &[])))
        }
        ("DELETE", Some(code)) => {
            let f = db
                .fields
                .get_mut(&e)
                .and_then(|v| {
                    v.iter_mut()
                        .find(|f| f.active && f.is_custom() && f.key == code)
                })
                .ok_or_else(|| err(404, "Field not found"))?;
            f.active = false;
            f.update_time = t;
            let code = f.key.clone();
            Ok(ok_data(|j| {
                j.obj().ks("field_code", &code).end_obj();
            }))
        }
        _ => Err(unknown_route()),
    }
}
