"""hardware_sim"""
