"""Unit tests of the step, in plain Python: `python3 -m unittest` (no component build)."""

import unittest

from app import Reserve
from rte_step import StepError, StepTest


class ReserveTest(unittest.TestCase):
    def test_reserves_and_gives_back(self):
        test = StepTest()
        outputs = test.execute(Reserve(), {"item": "apple", "qty": 3})
        self.assertEqual(outputs["remaining"], 7)
        self.assertEqual(test.kv["stock/apple"], "7")
        test.compensate(Reserve(), {"item": "apple"})
        self.assertEqual(test.kv["stock/apple"], "10")
        test.compensate(Reserve(), {"item": "apple"})  # nothing left to undo
        self.assertEqual(test.kv["stock/apple"], "10")

    def test_too_few_left_is_permanent_and_writes_nothing(self):
        test = StepTest()
        test.kv["stock/apple"] = "2"
        with self.assertRaises(StepError) as caught:
            test.execute(Reserve(), {"item": "apple", "qty": 3})
        self.assertFalse(caught.exception.is_retryable)
        self.assertEqual(test.kv, {"stock/apple": "2"})


if __name__ == "__main__":
    unittest.main()
