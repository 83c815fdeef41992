//! `patchwarden version compare deb|rpm A B`: the package managers' own order
//! of two versions, printed as `<`, `=` or `>`.

use std::cmp::Ordering;
use std::io::Write;

use patchwarden_versions::Format;

use crate::args::{CompareArgs, VersionFormat};
use crate::{Outcome, render};

pub fn compare(args: &CompareArgs) -> anyhow::Result<Outcome> {
    let format = match args.format {
        VersionFormat::Deb => Format::Deb,
        VersionFormat::Rpm => Format::Rpm,
    };
    let sign = match patchwarden_versions::compare(format, &args.a, &args.b)? {
        Ordering::Less => "<",
        Ordering::Equal => "=",
        Ordering::Greater => ">",
    };
    writeln!(render::stdout(), "{sign}")?;
    Ok(Outcome::Done)
}
