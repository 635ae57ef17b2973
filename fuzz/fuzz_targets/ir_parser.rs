//! Feeds arbitrary bytes to the IR parser. Whatever parses must verify
//! without panicking, and print to text that parses back and reprints the
//! same (the printer's fixed point). Seed the corpus with `dlc compile
//! --emit ir` outputs or `ir/tests` modules for faster coverage.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let Ok(module) = dlc_ir::parse_module(src) else { return };
    let _ = dlc_ir::verify_module(&module);
    let printed = dlc_ir::print_module(&module);
    let again = dlc_ir::parse_module(&printed).unwrap_or_else(|e| panic!("printed IR does not parse: {e}\n{printed}"));
    assert_eq!(dlc_ir::print_module(&again), printed, "printing is not a fixed point");
});
