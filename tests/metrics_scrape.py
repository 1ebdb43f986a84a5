"""Read a ``/metrics`` answer with prometheus-client's own parser (tests only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Scrape:
    """Every sample of one scrape: ``(sample name, labels, value)``; families by name."""

    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)
    families: dict[str, str] = field(default_factory=dict)  # family name -> type

    @classmethod
    def parse(cls, text: str) -> Scrape:
        out = cls()
        for family in text_string_to_metric_families(text):
            out.families[family.name] = family.type
            for s in family.samples:
                out.samples.append((s.name, dict(s.labels), float(s.value)))
        return out

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
        return sum(
            v
            for n, lab, v in self.samples
            if n == name and all(lab.get(k) == want for k, want in labels.items())
        )

    def has(self, name: str, **labels: str) -> bool:
        return any(
            n == name and all(lab.get(k) == want for k, want in labels.items())
            for n, lab, _v in self.samples
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {lab[label] for n, lab, _v in self.samples if n == name and label in lab}
