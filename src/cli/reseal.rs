//! `gitseal reseal`: copy the envelopes the controller re-wrapped to the Active key (published
//! in each SealedSecret's status) into the committed files. Only envelope lines change; files
//! whose object is missing from the cluster or differs from it are reported and left alone.

use super::io::{PUBLIC_MODE, Source, expand, write_atomic};
use super::kube::{block_on, client, cluster_failure};
use super::{CmdResult, ResealArgs, exit};
use crate::api::{SealedSecret, SealingKey};
use crate::format::Envelopes;
use crate::manifest::{Format, emit_sealed, is_sealed, parse_documents, parse_sealed};
use kube::api::Api;
use kube::{Client, ResourceExt};
use std::collections::BTreeSet;

pub fn run(args: ResealArgs) -> CmdResult {
    let paths: Vec<String> = if args.paths.is_empty() {
        vec![".".into()]
    } else {
        args.paths.iter().map(|p| p.display().to_string()).collect()
    };
    block_on(async {
        let client = client(&args.kube).await?;
        let keys: Api<SealingKey> = Api::all(client.clone());
        let cluster_keys: BTreeSet<String> = keys
            .list(&Default::default())
            .await
            .map_err(|e| cluster_failure(format!("cannot list SealingKeys: {e}")))?
            .items
            .iter()
            .filter_map(|k| k.status.as_ref()?.key_id.clone())
            .collect();
        let (mut rewritten, mut untouched, mut objects) = (0, 0, 0);
        for src in expand(&paths)? {
            match reseal_file(&client, &src, &cluster_keys).await {
                Ok(0) => {}
                Ok(n) => {
                    rewritten += 1;
                    objects += n;
                    eprintln!("{}: re-wrapped {n} object(s)", src.name());
                }
                Err(why) => {
                    untouched += 1;
                    println!("{}: {why}; left untouched", src.name());
                }
            }
        }
        eprintln!(
            "resealed {objects} object(s) in {rewritten} file(s); {untouched} file(s) left untouched"
        );
        Ok(if untouched == 0 {
            exit::OK
        } else {
            exit::PROBLEMS
        })
    })
}

/// Rewrite one file; the number of objects whose envelopes changed.
async fn reseal_file(
    client: &Client,
    src: &Source,
    cluster_keys: &BTreeSet<String>,
) -> Result<usize, String> {
    let text = src.read().map_err(|f| f.message)?;
    let Ok(docs) = parse_documents(&src.name(), &text) else {
        return Ok(0);
    };
    if !docs.iter().any(|d| is_sealed(&d.value)) {
        return Ok(0);
    }
    if !docs.iter().all(|d| is_sealed(&d.value)) {
        return Err("mixes SealedSecrets with other documents".into());
    }
    let mut objects = docs
        .iter()
        .map(parse_sealed)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut changed = 0;
    for obj in &mut objects {
        let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        let live = Api::<SealedSecret>::namespaced(client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(|e| format!("cannot read {ns}/{name}: {e}"))?
            .ok_or_else(|| format!("{ns}/{name} is not in the cluster"))?;
        if live.spec != obj.spec {
            return Err(format!(
                "{ns}/{name} differs from the live object (apply the file first)"
            ));
        }
        let rewrapped = live
            .status
            .map(|s| s.rewrapped_envelopes)
            .unwrap_or_default();
        if rewrapped.is_empty() {
            continue;
        }
        obj.spec.envelopes = merge_envelopes(&obj.spec.envelopes, &rewrapped, cluster_keys)?;
        changed += 1;
    }
    if changed > 0 {
        let out = emit_sealed(&objects, Format::sniff(&text));
        write_atomic(
            src.path.as_deref().expect("reseal reads files"),
            out.as_bytes(),
            PUBLIC_MODE,
        )
        .map_err(|f| f.message)?;
    }
    Ok(changed)
}

/// Replace the cluster's own wrappings of each re-wrapped envelope with the new ones; other
/// recipients' wrappings (offline recovery keys) stay. Re-wraps must be for cluster keys only,
/// and only for envelopes the file has.
pub fn merge_envelopes(
    file: &Envelopes,
    rewrapped: &Envelopes,
    cluster_keys: &BTreeSet<String>,
) -> Result<Envelopes, String> {
    let mut out = file.clone();
    for (id, wraps) in rewrapped {
        let entry = out.get_mut(id).ok_or_else(|| {
            format!("status re-wraps envelope {id}, which the file does not have")
        })?;
        if let Some(stranger) = wraps.keys().find(|k| !cluster_keys.contains(*k)) {
            return Err(format!(
                "status re-wraps envelope {id} for key id {stranger}, which is not a key of this cluster"
            ));
        }
        entry.retain(|kid, _| !cluster_keys.contains(kid));
        entry.extend(wraps.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Map;

    #[test]
    fn keeps_recovery_wrappings_and_refuses_strangers() {
        let file: Envelopes = Map::from_iter([(
            "e1".into(),
            Map::from_iter([
                ("old".into(), "w-old".into()),
                ("recovery".into(), "w-rec".into()),
            ]),
        )]);
        let cluster = BTreeSet::from(["old".to_string(), "new".to_string()]);
        let re: Envelopes = Map::from_iter([(
            "e1".into(),
            Map::from_iter([("new".into(), "w-new".into())]),
        )]);
        let out = merge_envelopes(&file, &re, &cluster).unwrap();
        assert_eq!(
            out[&"e1".to_string()],
            Map::from_iter([
                ("new".into(), "w-new".into()),
                ("recovery".into(), "w-rec".into())
            ])
        );
        let evil: Envelopes = Map::from_iter([(
            "e1".into(),
            Map::from_iter([("attacker".into(), "w".into())]),
        )]);
        assert!(
            merge_envelopes(&file, &evil, &cluster)
                .unwrap_err()
                .contains("not a key of this cluster")
        );
        let unknown: Envelopes =
            Map::from_iter([("e9".into(), Map::from_iter([("new".into(), "w".into())]))]);
        assert!(merge_envelopes(&file, &unknown, &cluster).is_err());
    }
}
