//! What the screen shows: the mode the app is in and the detail view's tabs. Plain
//! enums, so keys, layout and screens can match on them without knowing the app.

use crate::dialog::ThrottleDialog;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing the name filter after `/`.
    Filter,
    Throttle(ThrottleDialog),
    Help,
    Graph,
    /// The selected process's detail, on a tab.
    Detail(Tab),
    Backends,
    /// The rules in force (`R`), one selected.
    Rules,
    /// The usage history the daemon keeps (`u`), per application.
    History,
}

/// The tabs of the process detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Connections,
    Traffic,
    System,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Overview, Tab::Connections, Tab::Traffic, Tab::System];

    pub const fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Connections => "Connections",
            Tab::Traffic => "Traffic",
            Tab::System => "System",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|&t| t == self).unwrap_or(0)
    }

    /// The tab `step` places on (wrapping).
    pub fn step(self, step: isize) -> Tab {
        let count = Tab::ALL.len() as isize;
        Tab::ALL[(self.index() as isize + step).rem_euclid(count) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_step_both_ways_and_wrap() {
        assert_eq!(Tab::Overview.step(1), Tab::Connections);
        assert_eq!(Tab::Overview.step(-1), Tab::System);
        assert_eq!(Tab::System.step(1), Tab::Overview);
        assert_eq!(Tab::Traffic.step(6), Tab::Overview);
    }
}
