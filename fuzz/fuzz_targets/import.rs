//! The import readers on arbitrary text: `migrate::sops::open` (SOPS-encrypted Secret
//! manifests, with the throwaway identity of tests/fixtures/sops/key.txt, so the committed
//! seeds decrypt and the fuzzer mutates real files), `migrate::bitnami::parse_keys` (exported
//! key files and PEM) and `migrate::bitnami::open_sealed` (Bitnami SealedSecrets, with a
//! fixed test RSA key the seeds are sealed to). None may panic; errors render; what opens has
//! a value-free `Debug`.
#![no_main]

use gitseal::crypto::Identity;
use gitseal::manifest::parse_documents;
use gitseal::migrate::{bitnami, sops};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// tests/fixtures/sops/key.txt: a throwaway identity; it protects nothing.
const SOPS_IDENTITY: &str =
    "AGE-SECRET-KEY-1LHV0FYVJANVFFR5G9E0X7WGF43SNPHPSC5MK6X3PPQMTA2AD45DS065NEM";

/// A throwaway RSA-2048 key (openssl) the Bitnami seeds are sealed to with kubeseal v0.36.6;
/// it protects nothing.
const BITNAMI_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAuAKpHHs/Ga+2bYoKZDKLH0235SoCqxKwh5LT36jtDE+R6d0/
bAq+Z6FsDxazTqjjBYahJnFams1RdpELkKsn2pDYqtZTxWTWZdoaJnPBevsSZiZD
Fji9iQMcr19//UVmIUISqePYsPX5vQghRDwNtk+RQPCWXz1GIjCc5jHWeXEao+8D
GObbQj5Toai3Q6efdoy0vwR/O/EzlXiedICDiyl0FQAOyivhw5sAxtjZWSkycfM6
C1lNeHXCoK3vhnrDuFrV2eGtgp0rv6Bf05HFuBlCHYzVRKHcBmLyTH6ASizJO7f0
DusoidLakskIDfXr2j6yKUzLSPS4DH7QgQ+/3wIDAQABAoIBAAHmfnedquZULbv4
39LuwLK8kJMhzsWUhlUyxim6VWRkp/r0ftSvUbhr7tvts0Fd4NEBoHAaCJeuWifc
J0nsXUIrxR5n4z/tIte0xm4HkQPOTFTYvVBL8A0rsTlQcQJycTO+ZRyduUhZP1CH
9naoG3N6uTh5+PDtMZMQfHZWJRhmTFDr2a2xiiKGyCKbZb87OFgb0nMPUh0Vu7pG
qaShHfqEZFtn32LhanxEG/8NOQ1b3HsjMZwPMkWRxQXDIQ2/5QrgNI3eCmJH3eUb
xOyGu7buwXJMUGFOXxAtMr+5rIyM5k0FAVzBKq9JQdxNke6NvTdumjS1uR5p8W4h
tZrDrkkCgYEA3sN22ssP7Tdd7Ya1pwGOwwH2FAeyiVXQV34mfe+g9jF02+novJbJ
2Oi0oZFQZJW3iKgLERUjJhSs3gwDlJedXsC7ImBmasYNhSR2nhmc0we6Ws2tmbOH
27LUawMDd9fuSc6Vn8CnhwdxzATrZGJIDh3zDtcOgqDLD9AxHceySYcCgYEA03cB
ex7LFJjfA44LtCxMVc57T2C6miZ8VjGF+bPtgYLrK6ETXYPVATi6hhspu5aHuWw6
dUTUwo2wlpcA6fNcLkYDZEU/6Mjyrl6FVvQE3mQKyuydGcuyCXLqBpdMqKsv/fm4
eBOQb1ksfXq6cB8JzOcKh6fAJS1nLclEqEUDjOkCgYAkcBSg9VZFlyjmEYLlLnwL
qeZ2oEuz6zWJGjlxoCDUJILY9gn7zy51LJtfUkW0Lkk3MUWeJbb6I6ejKpPrWmGD
fkMd/GbEUGElxjEg60+btUfmUn5zBcrTRQ058+Q9VjTEHeabmwfMLouOs79NTEY9
COkZJFRbSbHthECEfoXLQQKBgQCzKAwVJ42esbWf6WR5DV7PA9Ts92Kg3yJQVDzR
xWLfau+bUyh4/gwksM82dyTwTSRIMC2G1P38ptaJfv3DN+9NNPwCo7j1m+ofWO1X
Mf49/Dw4mCaxiCYaY0VquBy2efJ7Fmr3MHwaGk7bMHNsMp+2/beqHrFnzgOwguis
N2w+oQKBgEyGNHL3DDkuUr0tKrIUKn3O4xC5hCJTMXela741xR0XOHQj6vkUVYgR
TFYqkUJmOifPvG+U4DB1CHdtBf12U5cWb9UZuihzrOKbMN4RO6IACoOiixPLaucz
8wt6I+0R0VlBaquLYEO03KFqSANSro/8ex1kr3ex7Rwh7vWo3iyE
-----END RSA PRIVATE KEY-----
";

fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::parse(SOPS_IDENTITY).expect("fixture identity parses"))
}

fn keys() -> &'static [bitnami::BitnamiKey] {
    static KEYS: OnceLock<Vec<bitnami::BitnamiKey>> = OnceLock::new();
    KEYS.get_or_init(|| bitnami::parse_keys("key.pem", BITNAMI_KEY).expect("fixture key parses"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match sops::open("fuzz.sops.yaml", &text, &[identity()]) {
        Ok(secrets) => {
            for s in &secrets {
                let _ = format!("{s:?}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Err(e) = bitnami::parse_keys("fuzz-keys.yaml", &text) {
        let _ = e.to_string();
    }
    let Ok(docs) = parse_documents("fuzz.yaml", &text) else {
        return;
    };
    for doc in docs.iter().filter(|d| bitnami::is_bitnami(&d.value)) {
        match bitnami::open_sealed(doc, keys(), Some("fuzz")) {
            Ok(secret) => {
                let _ = format!("{secret:?}");
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
