//! `ius-emulator`: runs the Graph user status emulator until killed (the command line is the
//! library's [`ius_emulator::command_line`], which `ius emulator` runs too).

use std::process::ExitCode;

fn main() -> ExitCode {
    ius_emulator::command_line::main("ius-emulator", std::env::args().skip(1))
}
