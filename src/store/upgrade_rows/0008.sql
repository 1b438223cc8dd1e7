UPDATE sweeps SET second_look = 2 WHERE id = 1;
