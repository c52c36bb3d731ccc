//! What a coordinator reads from institutions and an institution reads back from the
//! coordinator in a genesis across institutions (`dualchain_node::genesis`): a
//! `contribution.toml` and an `issued/<id>.toml`. The first byte picks the reader. Never
//! panics: a contribution that parses is checked (signature, then the assembly's checks on
//! a set of one), and every refusal is an error.
#![no_main]

use dualchain_node::genesis::assemble::check_contributions;
use dualchain_node::genesis::institution::{Contribution, IssuedFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(body) else { return };
    if which % 2 == 0 {
        if let Ok(c) = toml::from_str::<Contribution>(text) {
            let _ = c.verify();
            let _ = c.body.role();
            let _ = c.body.attribute_set();
            let _ = c.body.attribute_salt();
            if let Some(link) = &c.body.ibe {
                let _ = link.points();
            }
            let name = c.body.consortium.clone();
            let _ = check_contributions(&name, &[c.clone(), c]);
        }
    } else {
        let _ = toml::from_str::<IssuedFile>(text);
    }
});
