//! Metrics a module defines (`proxy_define_metric`), readable by the test.

use crate::status::Status;

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic counter.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Recorded values.
    Histogram,
}

impl MetricKind {
    fn from_abi(v: i32) -> Option<MetricKind> {
        match v {
            0 => Some(MetricKind::Counter),
            1 => Some(MetricKind::Gauge),
            2 => Some(MetricKind::Histogram),
            _ => None,
        }
    }
}

/// A metric's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// Name as the module defined it.
    pub name: String,
    /// Kind.
    pub kind: MetricKind,
    /// Counter or gauge value (0 for histograms).
    pub value: i64,
    /// Every value recorded into a histogram, in order.
    pub recorded: Vec<u64>,
}

/// All metrics of a host; ids are indexes + 1 (a module never gets id 0).
#[derive(Debug, Default)]
pub struct Metrics {
    all: Vec<Metric>,
}

impl Metrics {
    /// Defines (or finds, if already defined with the same kind) a metric.
    pub fn define(&mut self, kind: i32, name: &str) -> Result<u32, Status> {
        let kind = MetricKind::from_abi(kind).ok_or(Status::BadArgument)?;
        if let Some(i) = self.all.iter().position(|m| m.name == name) {
            if self.all[i].kind != kind {
                return Err(Status::BadArgument);
            }
            return Ok(i as u32 + 1);
        }
        self.all.push(Metric {
            name: name.to_string(),
            kind,
            value: 0,
            recorded: Vec::new(),
        });
        Ok(self.all.len() as u32)
    }

    fn by_id(&mut self, id: u32) -> Result<&mut Metric, Status> {
        let i = (id as usize).checked_sub(1).ok_or(Status::NotFound)?;
        self.all.get_mut(i).ok_or(Status::NotFound)
    }

    /// `proxy_increment_metric`: counters only go up, histograms refuse.
    pub fn increment(&mut self, id: u32, offset: i64) -> Result<(), Status> {
        let m = self.by_id(id)?;
        match m.kind {
            MetricKind::Counter if offset > 0 => m.value = m.value.saturating_add(offset),
            MetricKind::Gauge => m.value = m.value.saturating_add(offset),
            _ => return Err(Status::BadArgument),
        }
        Ok(())
    }

    /// `proxy_record_metric`: counters add, gauges set, histograms record.
    pub fn record(&mut self, id: u32, value: u64) -> Result<(), Status> {
        let m = self.by_id(id)?;
        match m.kind {
            MetricKind::Counter => m.value = m.value.saturating_add(value as i64),
            MetricKind::Gauge => m.value = value as i64,
            MetricKind::Histogram => m.recorded.push(value),
        }
        Ok(())
    }

    /// `proxy_get_metric`: histograms cannot be read back.
    pub fn get(&mut self, id: u32) -> Result<u64, Status> {
        let m = self.by_id(id)?;
        match m.kind {
            MetricKind::Histogram => Err(Status::BadArgument),
            _ => Ok(m.value as u64),
        }
    }

    /// A metric by name.
    pub fn by_name(&self, name: &str) -> Option<&Metric> {
        self.all.iter().find(|m| m.name == name)
    }

    /// All metrics in definition order.
    pub fn all(&self) -> &[Metric] {
        &self.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_histograms() {
        let mut m = Metrics::default();
        let c = m.define(0, "c").unwrap();
        assert_eq!(m.define(0, "c"), Ok(c));
        assert_eq!(m.define(1, "c"), Err(Status::BadArgument));
        m.increment(c, 2).unwrap();
        assert_eq!(m.increment(c, -1), Err(Status::BadArgument));
        assert_eq!(m.get(c), Ok(2));
        let g = m.define(1, "g").unwrap();
        m.increment(g, -3).unwrap();
        m.record(g, 7).unwrap();
        assert_eq!(m.by_name("g").unwrap().value, 7);
        let h = m.define(2, "h").unwrap();
        m.record(h, 5).unwrap();
        assert_eq!(m.get(h), Err(Status::BadArgument));
        assert_eq!(m.by_name("h").unwrap().recorded, [5]);
        assert_eq!(m.get(99), Err(Status::NotFound));
    }
}
