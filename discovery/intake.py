"""Intake: a proposed candidate through the sandbox and the duplicate check, into the archive.

Every candidate, baselines included, is validated here and never trusted: the sandbox's verdict
is stored with the candidate, a rejection keeps its reason (the proposer sees it next round), and a
candidate that is the same loss as an earlier one is stored as DUPLICATE with a link to the
original and is never trained. Same loss means same normalized code, or the same behaviour: policy
gradients pointing the same way, up to a positive scale that Adam cannot tell apart
(`sandbox.fingerprint.behaviour`), first on the sandbox's fixed settings, then confirmed on settings
drawn afresh (`Sandbox.same_behaviour`), so a loss that imitates another only on the fixed probes
cannot take its place. An accepted candidate carries its rebuilt graph's JSON, the only form
workers ever receive.

It does not queue evaluations (the engine does, for what this returns as accepted).
"""

from __future__ import annotations

from typing import Any

import torch

from discovery.archive import CandidateRecord, CandidateStatus, NewEvent
from discovery.ledger import Ledger
from discovery.proposers.base import Proposal
from discovery.store import CampaignStore
from sandbox import Candidate, Sandbox, Verdict
from sandbox.fingerprint import NEAR_DUPLICATE, distance

# Candidates whose graphs were trained or will be: the originals a newcomer may duplicate.
_ORIGINALS = (CandidateStatus.ACCEPTED, CandidateStatus.EVALUATED, CandidateStatus.FAILED)


class Intake:
    def __init__(
        self,
        *,
        campaign_id: int,
        archive: CampaignStore,
        ledger: Ledger,
        sandbox: Sandbox,
    ) -> None:
        self.campaign_id = campaign_id
        self.archive = archive
        self.ledger = ledger
        self.sandbox = sandbox
        self._behaviours: dict[int, torch.Tensor | None] = {}  # candidate id -> behaviour

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
        event = self._verdict_event(record.id, "rejected", reason)
        self._update(record.id, status=CandidateStatus.REJECTED, reason=reason, event=event)

    def validate(self, record: CandidateRecord) -> CandidateRecord | None:
        """The sandbox's verdict on a stored candidate; the accepted record, or None."""
        verdict: Verdict = self.sandbox.validate(
            Candidate(name=record.name, thought=record.thought, code=record.source)
        )
        # The verdict's event is written with the row it reports, in one transaction.
        event = self._verdict_event(record.id, str(verdict.status), verdict.reason)
        if not verdict.accepted:
            self._update(
                record.id,
                status=CandidateStatus.REJECTED,
                reason=verdict.reason,
                verdict=verdict.to_dict(),
                event=event,
            )
            return None
        original = self.archive.find_by_canonical_code(
            campaign_id=self.campaign_id, canonical_code=verdict.canonical_code or ""
        ) or self._twin(record.id, verdict.graph_json or "")
        if original is not None and original.id != record.id:
            self._update(
                record.id,
                status=CandidateStatus.DUPLICATE,
                reason=f"behaves like candidate {original.id} ({original.name}); not trained",
                duplicate_of=original.id,
                fingerprint=verdict.fingerprint,
                canonical_code=verdict.canonical_code,
                verdict=verdict.to_dict(),
                event=event,
            )
            return None
        return self._update(
            record.id,
            status=CandidateStatus.ACCEPTED,
            fingerprint=verdict.fingerprint,
            canonical_code=verdict.canonical_code,
            graph_json=verdict.graph_json,
            verdict=verdict.to_dict(),
            event=event,
        )

    def _twin(self, candidate_id: int, graph_json: str) -> CandidateRecord | None:
        """The earliest original that behaves like this graph, on fixed and on fresh settings."""
        mine = self.sandbox.behaviour(graph_json)
        if mine is None:
            return None
        self._behaviours[candidate_id] = mine
        originals = sorted(self.ledger.with_status(*_ORIGINALS), key=lambda c: c.id)
        for other in originals:
            if other.id == candidate_id or other.graph_json is None:
                continue
            if other.id not in self._behaviours:
                self._behaviours[other.id] = self.sandbox.behaviour(other.graph_json)
            theirs = self._behaviours[other.id]
            if theirs is None or distance(mine, theirs) > NEAR_DUPLICATE:
                continue
            if self.sandbox.same_behaviour(graph_json, other.graph_json):
                return other
        return None

    def _verdict_event(self, candidate_id: int, status: str, reason: str) -> NewEvent:
        payload = {"candidate": candidate_id, "status": status, "reason": reason}
        return NewEvent(campaign_id=self.campaign_id, kind="verdict", payload=payload)

    def _update(self, candidate_id: int, **fields: Any) -> CandidateRecord:
        return self.ledger.put_candidate(self.archive.update_candidate(candidate_id, **fields))
