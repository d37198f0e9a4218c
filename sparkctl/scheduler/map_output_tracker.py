"""Where each shuffle's map outputs are: shuffle id -> one MapStatus per map partition."""
from __future__ import annotations

from sparkctl.storage.shuffle import MapStatus


class MapOutputTracker:
    def __init__(self) -> None:
        self.outputs: dict[int, list[MapStatus | None]] = {}

    def register_shuffle(self, shuffle_id: int, num_maps: int) -> None:
        self.outputs.setdefault(shuffle_id, [None] * num_maps)

    def unregister_shuffle(self, shuffle_id: int) -> None:
        self.outputs.pop(shuffle_id, None)

    def register_map_output(self, shuffle_id: int, map_index: int, status: MapStatus) -> None:
        self.outputs[shuffle_id][map_index] = status

    def unregister_map_output(self, shuffle_id: int, map_index: int) -> None:
        outs = self.outputs.get(shuffle_id)
        if outs is not None and 0 <= map_index < len(outs):
            outs[map_index] = None

    def remove_outputs_on_executor(self, executor_id: str) -> None:
        for outs in self.outputs.values():
            for i, status in enumerate(outs):
                if status is not None and status.executor_id == executor_id:
                    outs[i] = None

    def missing_partitions(self, shuffle_id: int) -> list[int]:
        return [i for i, s in enumerate(self.outputs.get(shuffle_id, [])) if s is None]

    def is_available(self, shuffle_id: int) -> bool:
        outs = self.outputs.get(shuffle_id)
        return outs is not None and all(s is not None for s in outs)

    def statuses(self, shuffle_id: int) -> list[MapStatus | None]:
        return list(self.outputs.get(shuffle_id, []))
