"""Intake: a proposed candidate through the sandbox and the duplicate check, into the archive.

Every candidate, baselines included, is validated here and never trusted: the sandbox's verdict
is stored with the candidate, a rejection keeps its reason (the proposer sees it next round), and a
candidate that is the same loss as an earlier one (same normalized code, or same behaviour on the
sandbox's probe set) is stored as DUPLICATE with a link to the original and is never trained. An
accepted candidate carries its rebuilt graph's JSON, the only form workers ever receive.

It does not queue evaluations (the engine does, for what this returns as accepted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from discovery.archive import Archive, CandidateRecord, CandidateStatus
from discovery.ledger import Ledger
from discovery.proposers.base import Proposal
from sandbox import Candidate, Sandbox, Verdict


class Intake:
    def __init__(
        self,
        *,
        campaign_id: int,
        archive: Archive,
        ledger: Ledger,
        sandbox: Sandbox,
        event: Callable[[str, dict[str, object]], None],
    ) -> None:
        self.campaign_id = campaign_id
        self.archive = archive
        self.ledger = ledger
        self.sandbox = sandbox
        self.event = event

    def store(
        self, proposal: Proposal, *, island: int, provenance: dict[str, Any]
    ) -> CandidateRecord:
        """Store a proposal as a PROPOSED candidate (before anything is done with it)."""
        return self.ledger.put_candidate(
            self.archive.add_candidate(
                campaign_id=self.campaign_id,
                name=proposal.name,
                source=proposal.code,
                origin=proposal.origin,
                thought=proposal.thought,
                parent_ids=proposal.parent_ids,
                island=island,
                provenance=provenance,
            )
        )

    def reject(self, record: CandidateRecord, reason: str) -> None:
        """Reject without validating (a reply that held no candidate code)."""
        self.event("verdict", {"candidate": record.id, "status": "rejected", "reason": reason})
        self._update(record.id, status=CandidateStatus.REJECTED, reason=reason)

    def validate(self, record: CandidateRecord) -> CandidateRecord | None:
        """The sandbox's verdict on a stored candidate; the accepted record, or None."""
        verdict: Verdict = self.sandbox.validate(
            Candidate(name=record.name, thought=record.thought, code=record.source)
        )
        self.event(
            "verdict",
            {"candidate": record.id, "status": str(verdict.status), "reason": verdict.reason},
        )
        if not verdict.accepted:
            self._update(
                record.id,
                status=CandidateStatus.REJECTED,
                reason=verdict.reason,
                verdict=verdict.to_dict(),
            )
            return None
        original = self.archive.find_by_canonical_code(
            campaign_id=self.campaign_id, canonical_code=verdict.canonical_code or ""
        ) or self.archive.find_by_fingerprint(
            campaign_id=self.campaign_id, fingerprint=verdict.fingerprint or ""
        )
        if original is not None and original.id != record.id:
            self._update(
                record.id,
                status=CandidateStatus.DUPLICATE,
                reason=f"behaves like candidate {original.id} ({original.name}); not trained",
                duplicate_of=original.id,
                fingerprint=verdict.fingerprint,
                canonical_code=verdict.canonical_code,
                verdict=verdict.to_dict(),
            )
            return None
        return self._update(
            record.id,
            status=CandidateStatus.ACCEPTED,
            fingerprint=verdict.fingerprint,
            canonical_code=verdict.canonical_code,
            graph={"json": verdict.graph_json},
            verdict=verdict.to_dict(),
        )

    def _update(self, candidate_id: int, **fields: Any) -> CandidateRecord:
        return self.ledger.put_candidate(self.archive.update_candidate(candidate_id, **fields))
