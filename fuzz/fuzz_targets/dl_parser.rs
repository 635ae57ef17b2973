//! Feeds arbitrary bytes to the `.dl` frontend. Parsing and compiling must
//! never panic; a failed compile must explain itself (and never with an
//! internal error); a successful one must verify and print IR that parses
//! back. Seed the corpus with `examples/*.dl` for faster coverage.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let _ = dlc_frontend::parse("fuzz.dl", src);
    match dlc_frontend::compile("fuzz.dl", src) {
        Ok(c) => {
            if let Err(e) = dlc_ir::verify_module(&c.module) {
                panic!("compiled IR does not verify: {e:?}");
            }
            let printed = dlc_ir::print_module(&c.module);
            dlc_ir::parse_module(&printed).unwrap_or_else(|e| panic!("printed IR does not parse: {e}\n{printed}"));
            let _ = dlc_frontend::dump_ast(&c.ast);
        }
        Err(d) => {
            assert!(!d.items.is_empty(), "a failed compile without diagnostics");
            assert!(d.items.iter().all(|i| i.code != dlc_frontend::codes::INTERNAL), "{}", d.render(false));
            let _ = d.render(false);
        }
    }
});
